"""Inspector's continuous findings on a platform manifest of a deployed multi-platform image.

Inspector scans platform manifests, never the index (research 6, 7.3), and reports each finding on the
platform's digest; the kubelet names the index (`imageID`) and tags name the index. A finding that changes a
platform's verdict therefore changes the index's derived verdict, which the tags' pointers carry, and the
workloads running the index are told, through the real handlers on moto's ECR holding a real index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from tagwarden.cli.main import app
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from typer.testing import CliRunner

from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.inspector import inspector_finding, inspector_scan
from tests.support.multiarch import Build, build, build_pushes, manifest_push, put_build
from tests.support.requests import RequestLog, dynamodb_operations
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

DAY = "2026-11-20"
IMAGE = f"{ECR}/shop/api"
CVE = "7d3e9a1c5b2f48e6a0c4d8b1f3e5a7c9"
OTHER_CVE = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
# Inspector's summary of each platform at first scan: nothing at or above the fail severity (CRITICAL).
CLEAN = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "TOTAL": 3}


@pytest.fixture
def release(stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler) -> Build:
    """Given release 3.0.0 (linux/amd64 and linux/arm64) pushed to ECR, both platforms scanned by Inspector
    with no CRITICAL finding, and the Deployment shop/api running it: the kubelet reports the index digest."""
    ecr: ECRClient = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="shop/api")
    pushed = build("api 3.0.0")
    put_build(ecr, "shop/api", pushed, "3.0.0")
    for event in build_pushes(pushed, "3.0.0", f"{DAY}T09:00:00Z"):
        push_guard(event)
    for n, platform in enumerate(pushed.platforms):
        scan_recorder(inspector_scan(digest=pushed.digest(platform), tags=[], time=f"{DAY}T09:01:0{n}Z", counts=CLEAN))
    audit_watcher(deployed(pushed))
    assert verdict(stack, pushed.index_digest) == "pass"
    assert stack.received_alerts() == []
    return pushed


def deployed(pushed: Build) -> dict[str, Any]:
    """A Deployment of `shop/api:3.0.0`, and its pod's kubelet reporting the index it pulled."""
    image = f"{IMAGE}:3.0.0"
    spec = at(with_images(audit_line("deployment_create.json"), image), "10:00:00")
    status = kubelet_status("api-6f9d7c8b5-r2x7k", image, f"{IMAGE}@{pushed.index_digest}", "k-1")
    return envelope([spec, at(status, "10:00:30")])


def finding(pushed: Build, platform: str, time: str, status: str = "ACTIVE", cve: str = CVE) -> dict[str, Any]:
    """Inspector's finding event on one platform manifest: untagged (the tag names the index), and naming the
    platform's one architecture, as Inspector reports each platform image (research 6)."""
    digest = pushed.digest(platform)
    event = inspector_finding(digest=digest, time=time, severity="CRITICAL", status=status, finding=cve, tags=[])
    (resource,) = event["detail"]["resources"]
    for details in (resource["details"]["awsEcrContainerImage"], resource["details"]["image"]):
        details["architecture"] = platform.split("/")[1]
    return event


def record(stack: Stack, digest: str, sk: str = "IMAGE") -> dict[str, Any]:
    (item,) = (i for i in stack.items() if i["pk"]["S"] == f"IMAGE#{IMAGE}@{digest}" and i["sk"]["S"] == sk)
    return item


def verdict(stack: Stack, digest: str) -> str:
    verdict: str = record(stack, digest)["scan"]["M"]["verdict"]["S"]
    return verdict


def pointer_verdict(stack: Stack, tag: str) -> tuple[str, str]:
    (item,) = (i for i in stack.items() if i["pk"]["S"] == f"TAG#{IMAGE}:{tag}" and i["sk"]["S"] == "POINTER")
    return item["digest"]["S"], item["scan"]["M"]["verdict"]["S"]


def check(stack: Stack, reference: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["check", reference, "--table", stack.table_name, "--json"])
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_a_critical_finding_on_the_arm64_platform_fails_the_deployed_index_and_alerts_its_workload_once(
    stack: Stack, release: Build, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    pushed = release
    # When Inspector's continuous scanning finds a new CRITICAL on the arm64 platform manifest
    found = finding(pushed, "linux/arm64", "2026-11-25T06:00:00Z")
    result = scan_recorder(found)

    # Then the platform fails, and so does the index: the tag's pointer carries it, `check` refuses it
    assert verdict(stack, pushed.digest("linux/arm64")) == "fail"
    assert verdict(stack, pushed.digest("linux/amd64")) == "pass"
    assert verdict(stack, pushed.index_digest) == "fail"
    # the index's failing episode is its own, learned when the finding was recorded (see vulnerable ids)
    index_scan = record(stack, pushed.index_digest)["scan"]["M"]
    assert {"failing_since", "failing_recorded_at"} <= index_scan.keys()
    assert pointer_verdict(stack, "3.0.0") == (pushed.index_digest, "fail")
    answer = check(stack, f"{IMAGE}:3.0.0")
    assert (answer["passed"], answer["refusal"]) == (False, "failing verdict")

    # And the workload running the index is alerted, once, naming the index it runs
    (received,) = stack.received_alerts()
    alert = received.alert
    assert result["alerts"] == [alert.alert_id]
    assert (alert.type, alert.severity) == (AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL)
    assert (alert.tag, alert.current_digest) == ("3.0.0", pushed.index_digest)
    assert [(s.cluster, s.namespace, s.workload) for s in alert.in_use] == [("prod-eks", "shop", "api")]
    assert alert.evidence == (found["id"],)

    # And the audit watcher seeing the workload again raises the same finding, so nothing more arrives;
    # the same event delivered again and an older event of the finding arriving late change nothing
    audit_watcher(deployed(pushed))
    assert scan_recorder(found)["outcome"] == "duplicate"
    assert scan_recorder(finding(pushed, "linux/arm64", "2026-11-25T05:00:00Z"))["outcome"] == "late"
    assert stack.received_alerts() == []
    assert verdict(stack, pushed.index_digest) == "fail"

    # When a second CRITICAL appears on the amd64 platform (the index keeps failing: same episode)
    scan_recorder(finding(pushed, "linux/amd64", "2026-11-25T07:00:00Z", cve=OTHER_CVE))
    assert verdict(stack, pushed.index_digest) == "fail"
    assert stack.received_alerts() == []

    # When security staff suppress both findings
    scan_recorder(finding(pushed, "linux/arm64", "2026-11-26T06:00:00Z", status="SUPPRESSED"))
    assert verdict(stack, pushed.index_digest) == "fail"  # amd64 still fails
    scan_recorder(finding(pushed, "linux/amd64", "2026-11-26T06:01:00Z", status="SUPPRESSED", cve=OTHER_CVE))

    # Then the index passes again, the pointer carries it and `check` accepts the tag, with nothing alerted
    assert verdict(stack, pushed.index_digest) == "pass"
    assert pointer_verdict(stack, "3.0.0") == (pushed.index_digest, "pass")
    assert check(stack, f"{IMAGE}:3.0.0")["passed"] is True
    assert stack.received_alerts() == []

    # When the arm64 finding is reopened, the index fails again: a new failing episode, alerted once more
    scan_recorder(finding(pushed, "linux/arm64", "2026-11-27T06:00:00Z"))
    (again,) = stack.received_alerts()
    assert (again.alert.type, again.alert.current_digest) == (AlertType.VULNERABLE_IMAGE_DEPLOYED, pushed.index_digest)
    assert again.alert.alert_id != alert.alert_id
    audit_watcher(deployed(pushed))
    assert stack.received_alerts() == []


def test_the_index_s_derived_history_records_the_finding_that_changed_it(
    stack: Stack, release: Build, scan_recorder: Handler
) -> None:
    found = finding(release, "linux/arm64", "2026-11-25T06:00:00Z")
    scan_recorder(found)

    # The index's scan history has a derived entry for the finding event, as for a platform's scan
    index_entries = [
        i
        for i in stack.items()
        if i["pk"]["S"] == f"IMAGE#{IMAGE}@{release.index_digest}" and i["sk"]["S"].startswith("SCAN#")
    ]
    assert [e["event_id"]["S"] for e in index_entries if e["scan"]["M"]["verdict"]["S"] == "fail"] == [found["id"]]
    history = CliRunner().invoke(app, ["history", f"{IMAGE}:3.0.0", "--table", stack.table_name])
    assert history.exit_code == 0, history.output


def test_a_rescan_failing_a_platform_alerts_the_workload_running_the_index_once(
    stack: Stack, release: Build, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # When Inspector's rescan of the arm64 platform (a new CVE published) counts a CRITICAL
    failing = {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 0, "TOTAL": 2}
    rescan = inspector_scan(digest=release.digest("linux/arm64"), tags=[], time="2026-11-25T06:00:00Z", counts=failing)
    scan_recorder(rescan)

    # Then the workload running the index is alerted once, and a rescan that still fails raises nothing more
    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.current_digest) == (
        AlertType.VULNERABLE_IMAGE_DEPLOYED,
        release.index_digest,
    )
    assert received.alert.evidence == (rescan["id"],)
    scan_recorder(rescan)
    digest = release.digest("linux/arm64")
    scan_recorder(inspector_scan(digest=digest, tags=[], time="2026-11-26T06:00:00Z", counts=failing))
    audit_watcher(deployed(release))
    assert stack.received_alerts() == []


def test_pushing_the_failing_index_under_another_tag_keeps_its_failing_episode(
    stack: Stack, release: Build, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scan_recorder(finding(release, "linux/arm64", "2026-11-25T06:00:00Z"))
    assert len(stack.received_alerts()) == 1
    episode = record(stack, release.index_digest)["scan"]["M"]["failing_since"]

    # When CI tags the same index `stable` (ECR emits a PUSH of the index under the new tag)
    ecr: ECRClient = boto3.client("ecr", region_name=REGION)
    put_build(ecr, "shop/api", release, "stable")
    push_guard(manifest_push(digest=release.index_digest, time="2026-11-25T08:00:00Z", tag="stable", index=True))

    # Then the index's derived state, re-derived by the push, is still the same failing episode, so the
    # workload already alerted is not alerted again when the audit watcher next sees it
    assert record(stack, release.index_digest)["scan"]["M"]["failing_since"] == episode
    stack.received_alerts()  # what the push itself raises about the tag is the push guard's business
    audit_watcher(deployed(release))
    assert [r.alert.type for r in stack.received_alerts()] == []


def test_a_finding_re_deriving_its_index_costs_three_reads_and_one_transaction(stack: Stack, release: Build) -> None:
    requests = RequestLog()
    requests.attach()  # before the module's clients exist: they copy the session's handlers
    module = load_function_module("scan_recorder", stack.environment())
    with requests.record() as calls:
        result = module.lambda_handler(finding(release, "linux/arm64", "2026-11-25T06:00:00Z"), FakeLambdaContext())
    assert len(result["alerts"]) == 1
    # The platform's record, the finding and its pointers; then the index; then the index's other platform
    # and its tags' pointers (the reads a platform's scan makes too). Everything is written in one transaction;
    # the one UpdateItem marks the alert delivered in the outbox.
    ledger = [c for c in calls if c.service == "dynamodb" and not c.alert_bookkeeping]
    assert dynamodb_operations(ledger) == {"BatchGetItem": 3, "TransactWriteItems": 1}
    assert sum(c.alert_bookkeeping for c in calls) == 1
