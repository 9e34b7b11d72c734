"""Findings after deployment, told as AWS delivers them, through the real handlers on moto.

Workloads' usage is recorded by the real audit watcher first; rescans and Inspector's continuous findings
then change what the ledger knows about content already running.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tagwarden.cli.main import app
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from tagwarden.events.parsing import InvalidEventError
from tagwarden.ports import AlertDeliveryError
from typer.testing import CliRunner

from tests.conftest import cold_start
from tests.support.audit import ECR, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.inspector import inspector_finding, inspector_scan
from tests.support.stack import ReceivedAlert, Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
IMAGE = f"{ECR}/shop/api"
CRITICAL_CVE = "9b7e1c04d2a64f3e8a15c6d7e0f92b41"
LOW_CVE = "1c5d8e2f3a4b6c7d8e9f0a1b2c3d4e5f"


def recently(line: dict[str, Any]) -> dict[str, Any]:
    """The audit line as seen an hour ago: usage counts for 30 days, so the story must be recent."""
    seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return {**line, "requestReceivedTimestamp": seen, "stageTimestamp": seen}


def deployment(image: str = f"{IMAGE}:latest") -> dict[str, Any]:
    """CloudWatch Logs delivery of the Deployment `shop/api` in cluster `prod-eks` deploying `image`."""
    return envelope([recently(with_images(audit_line("deployment_create.json"), image))])


def running(digest: str) -> dict[str, Any]:
    """The kubelet reporting a pod of `shop/api` running `digest`, started from `:latest`."""
    return envelope([recently(kubelet_status("api-7d9f8c6b5d-x2k9p", f"{IMAGE}:latest", f"{IMAGE}@{digest}"))])


def vulnerable(stack: Stack) -> list[ReceivedAlert]:
    received = stack.received_alerts()
    assert all(r.alert.type is AlertType.VULNERABLE_IMAGE_DEPLOYED for r in received), received
    return received


def digest_scan(stack: Stack, digest: str) -> dict[str, Any]:
    (item,) = (i for i in stack.items() if i["pk"]["S"] == f"IMAGE#{IMAGE}@{digest}" and i["sk"]["S"] == "IMAGE")
    scan: dict[str, Any] = item["scan"]["M"]
    return scan


def verdict(stack: Stack, digest: str) -> tuple[str, dict[str, int]]:
    scan = digest_scan(stack, digest)
    counts = {name: int(value["N"]) for name, value in scan["finding_counts"]["M"].items()}
    return scan["verdict"]["S"], counts


def check(stack: Stack, reference: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["check", reference, "--table", stack.table_name, "--json"])
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.fixture
def in_use(stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler) -> None:
    """Given `latest` names A, whose scan passes, and the Deployment shop/api runs it (no alert)."""
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T09:14:52Z", counts={"HIGH": 2}))
    audit_watcher(deployment())
    audit_watcher(running(A))
    assert stack.received_alerts() == []


# --- a rescan that makes an in-use digest fail ----------------------------------------------------


@pytest.mark.usefixtures("in_use")
def test_a_rescan_failing_an_in_use_digest_alerts_its_workload_once_per_change_of_verdict(
    stack: Stack, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # When a manual rescan of A finds a CRITICAL vulnerability
    failing = ecr_scan(digest=A, tags=["latest"], time="2026-11-21T08:00:00Z", counts={"CRITICAL": 1, "HIGH": 2})
    result = scan_recorder(failing)

    # Then the workload running A is alerted, as the audit watcher would have alerted it
    (alert,) = vulnerable(stack)
    assert result["alerts"] == [alert.alert.alert_id]
    assert (alert.alert.severity, alert.alert.tag, alert.alert.current_digest) == (Severity.CRITICAL, "latest", A)
    assert [(s.cluster, s.namespace, s.workload) for s in alert.alert.in_use] == [("prod-eks", "shop", "api")]
    assert alert.alert.kubernetes is None
    assert alert.alert.evidence == (failing["id"],)
    assert "turned to fail: 1 CRITICAL, 2 HIGH" in alert.alert.summary
    first_id = alert.alert.alert_id

    # And the same event delivered again, a rescan that still fails, and the audit watcher seeing the same
    # workload and content again raise nothing more
    scan_recorder(failing)
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-21T09:00:00Z", counts={"CRITICAL": 2}))
    audit_watcher(deployment())
    audit_watcher(running(A))
    assert stack.received_alerts() == []

    # When A passes a rescan and later fails again
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-22T08:00:00Z", counts={"HIGH": 1}))
    assert stack.received_alerts() == []
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-23T08:00:00Z", counts={"CRITICAL": 1}))

    # Then the new failing episode is a new finding, alerted once more, and the audit watcher stays quiet
    (again,) = vulnerable(stack)
    assert again.alert.alert_id != first_id
    assert (again.alert.severity, again.alert.in_use[0].workload) == (Severity.CRITICAL, "api")
    audit_watcher(deployment())
    audit_watcher(running(A))
    assert stack.received_alerts() == []


@pytest.mark.usefixtures("in_use")
def test_a_late_rescan_older_than_the_digest_s_state_changes_no_verdict(stack: Stack, scan_recorder: Handler) -> None:
    # Given A passed a newer scan
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-22T08:00:00Z", counts={"LOW": 1}))
    # When an older failing scan is delivered late
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-21T08:00:00Z", counts={"CRITICAL": 1}))
    # Then the digest still passes and nobody is alerted
    assert verdict(stack, A) == ("pass", {"LOW": 1})
    assert stack.received_alerts() == []


def test_a_workload_deploying_by_digest_is_alerted_when_that_digest_fails(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given a GitOps Deployment pins shop/api@A, which passed its scan
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T09:14:07Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T09:14:52Z", counts={"HIGH": 2}))
    audit_watcher(deployment(f"{IMAGE}@{A}"))
    assert stack.received_alerts() == []

    # When a rescan fails A
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-21T08:00:00Z", counts={"CRITICAL": 1}))

    # Then the workload is alerted for the digest it deploys (no tag involved), once
    (alert,) = vulnerable(stack)
    assert (alert.alert.tag, alert.alert.current_digest, alert.alert.in_use[0].workload) == (None, A, "api")
    audit_watcher(deployment(f"{IMAGE}@{A}"))
    assert stack.received_alerts() == []


def test_a_failing_digest_no_workload_uses_alerts_nobody_until_one_deploys_it(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given A was pushed and failed its scan while nothing ran it
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T09:14:52Z", counts={"CRITICAL": 1}))
    assert stack.received_alerts() == []

    # When a Deployment deploys it, then a rescan still fails it
    audit_watcher(deployment())
    (alert,) = vulnerable(stack)
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-21T08:00:00Z", counts={"CRITICAL": 3}))

    # Then the audit watcher alerted once, and the rescan (no change of verdict) raised nothing
    assert alert.alert.kubernetes is not None and alert.alert.kubernetes.kind == "Deployment"
    assert stack.received_alerts() == []


# --- Inspector's continuous findings -------------------------------------------------------------


def test_inspector_findings_change_the_verdict_between_scans(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given Inspector's initial scan of A (0 CRITICAL, 3 HIGH, 9 MEDIUM, 21 in total) passes at CRITICAL,
    # and shop/api runs A
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    scan_recorder(load_event("scan_recorder/inspector_ecr_scan.json"))
    audit_watcher(deployment())
    assert verdict(stack, A) == ("pass", {"HIGH": 3, "MEDIUM": 9})
    assert stack.received_alerts() == []

    # When continuous scanning reports a new CRITICAL finding on A
    found = inspector_finding(digest=A, time="2026-11-25T06:00:00Z", severity="CRITICAL", finding=CRITICAL_CVE)
    scan_recorder(found)

    # Then A fails, the tag's pointer carries it (so `check` refuses), and the workload is alerted
    assert verdict(stack, A) == ("fail", {"CRITICAL": 1, "HIGH": 3, "MEDIUM": 9})
    (alert,) = vulnerable(stack)
    assert (alert.alert.severity, alert.alert.tag) == (Severity.CRITICAL, "latest")
    assert alert.alert.evidence == (found["id"],)
    assert check(stack, f"{IMAGE}:latest")["refusal"] == "failing verdict"

    # And the same event again changes nothing
    assert scan_recorder(found)["outcome"] == "duplicate"
    assert stack.received_alerts() == []

    # When the finding is suppressed, an older ACTIVE event of it arrives late, and it is reopened
    scan_recorder(
        inspector_finding(
            digest=A, time="2026-11-26T06:00:00Z", severity="CRITICAL", status="SUPPRESSED", finding=CRITICAL_CVE
        )
    )
    assert verdict(stack, A) == ("pass", {"HIGH": 3, "MEDIUM": 9})
    assert check(stack, f"{IMAGE}:latest")["passed"] is True
    late = inspector_finding(digest=A, time="2026-11-25T12:00:00Z", severity="CRITICAL", finding=CRITICAL_CVE)
    assert scan_recorder(late)["outcome"] == "late"
    assert verdict(stack, A)[0] == "pass"
    assert stack.received_alerts() == []
    scan_recorder(inspector_finding(digest=A, time="2026-11-27T06:00:00Z", severity="CRITICAL", finding=CRITICAL_CVE))

    # Then the reopened finding is a new failing episode: alerted once more
    (again,) = vulnerable(stack)
    assert again.alert.alert_id != alert.alert.alert_id
    audit_watcher(deployment())
    assert stack.received_alerts() == []


def test_a_finding_whose_alert_could_not_be_published_is_published_by_the_retry_once(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    recorder = load_function_module("scan_recorder", stack.environment())
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    recorder.lambda_handler(load_event("scan_recorder/inspector_ecr_scan.json"), FakeLambdaContext())
    audit_watcher(deployment())
    sns = recorder.SCAN_RECORDER._delivery._publisher._client
    found = inspector_finding(digest=A, time="2026-11-25T06:00:00Z", severity="CRITICAL", finding=CRITICAL_CVE)

    # When SNS refuses the alert of the finding that fails A
    original = sns._make_api_call

    def unavailable(name: str, params: dict[str, Any]) -> Any:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS unavailable"}}, name)

    sns._make_api_call = unavailable
    try:
        with pytest.raises(AlertDeliveryError):
            recorder.lambda_handler(found, FakeLambdaContext())
    finally:
        sns._make_api_call = original
    assert stack.received_alerts() == []

    # Then Lambda's retry of the same event publishes it, once
    retried = recorder.lambda_handler(found, FakeLambdaContext())
    assert retried["outcome"] == "duplicate"
    (alert,) = vulnerable(stack)
    assert retried["alerts"] == [alert.alert.alert_id]
    assert recorder.lambda_handler(found, FakeLambdaContext())["alerts"] == []
    assert stack.received_alerts() == []


def test_a_burst_of_findings_in_any_order_never_shows_a_failing_image_passing(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    # Given the finding events of A's initial scan arrive before its summary: a LOW one first
    scan_recorder(inspector_finding(digest=A, time="2026-11-20T09:16:30Z", severity="LOW", finding=LOW_CVE))
    # Then a few finding events prove nothing: A is not judged yet
    assert "scan" not in next(i for i in stack.items() if i["sk"]["S"] == "IMAGE")
    assert check(stack, f"{IMAGE}:latest")["refusal"] == "unscanned"

    # When the summary (1 CRITICAL) arrives before the CRITICAL finding's own event
    counts = {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "TOTAL": 2}
    scan_recorder(inspector_scan(digest=A, tags=["latest"], time="2026-11-20T09:16:38Z", counts=counts))
    # Then A fails on the summary's count; the LOW finding already accounts for the rest of the total
    assert verdict(stack, A) == ("fail", {"CRITICAL": 1, "LOW": 1})

    # When the CRITICAL finding's event arrives late, then Inspector closes it (it stopped monitoring A)
    scan_recorder(inspector_finding(digest=A, time="2026-11-20T09:16:31Z", severity="CRITICAL", finding=CRITICAL_CVE))
    assert verdict(stack, A) == ("fail", {"CRITICAL": 1, "LOW": 1})
    closed = inspector_finding(
        digest=A, time="2026-11-28T06:00:00Z", severity="CRITICAL", status="CLOSED", finding=CRITICAL_CVE
    )
    scan_recorder(closed)
    # Then A still fails: its content did not change, a closure says nothing about it
    assert verdict(stack, A) == ("fail", {"CRITICAL": 1, "LOW": 1})

    # When security staff suppress the finding (an Inspector suppression rule)
    suppressed = inspector_finding(
        digest=A, time="2026-11-28T07:00:00Z", severity="CRITICAL", status="SUPPRESSED", finding=CRITICAL_CVE
    )
    scan_recorder(suppressed)

    # Then A passes, and `check` accepts the tag (its pointer carries a scan recorded for A)
    assert verdict(stack, A) == ("pass", {"LOW": 1})
    assert check(stack, f"{IMAGE}:latest")["passed"] is True


def test_a_finding_on_an_image_scanned_before_findings_were_tracked_judges_from_its_scan(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    # Given A's last completed scan (ECR's, or the backfill's) passed with 2 HIGH
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T09:14:52Z", counts={"HIGH": 2}))
    # When Inspector updates one of those HIGH findings, then reports a new MEDIUM one
    scan_recorder(inspector_finding(digest=A, time="2026-11-25T06:00:00Z", severity="HIGH"))
    assert verdict(stack, A) == ("pass", {"HIGH": 2})
    scan_recorder(inspector_finding(digest=A, time="2026-11-25T07:00:00Z", severity="MEDIUM", finding=LOW_CVE))
    # Then the scan's counts stand for the findings not reported yet: still passing, now with the MEDIUM
    assert verdict(stack, A) == ("pass", {"HIGH": 2, "MEDIUM": 1})
    assert check(stack, f"{IMAGE}:latest")["passed"] is True


def test_findings_on_other_resources_are_ignored(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/inspector_ecr_finding.json")
    (resource,) = event["detail"]["resources"]
    resource.update({"type": "AWS_EC2_INSTANCE", "id": "i-0c5e2f7a9b13d4e68", "details": {"awsEc2Instance": {}}})

    assert scan_recorder(event) == {"outcome": "ignored", "alerts": []}
    assert stack.items() == []


def test_a_malformed_finding_names_the_field_and_writes_nothing(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/inspector_ecr_finding.json")
    event["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["imageHash"] = "sha256:nothex"

    with pytest.raises(InvalidEventError, match="imageHash"):
        scan_recorder(event)
    assert stack.items() == []


def test_the_sample_finding_is_recorded(stack: Stack, scan_recorder: Handler) -> None:
    result = scan_recorder(load_event("scan_recorder/inspector_ecr_finding.json"))

    assert result == {"outcome": "recorded", "alerts": []}
    (finding,) = (i for i in stack.items() if i["sk"]["S"].startswith("VULN#"))
    assert (finding["severity"]["S"], finding["status"]["S"]) == ("MEDIUM", "ACTIVE")
    assert finding["finding_arn"]["S"].endswith("finding/4f2a9c1d7e3b85a06c1d9e2f7a4b3c58")


# --- an undecided verdict ------------------------------------------------------------------------


def test_inspector_counts_that_cannot_decide_under_a_low_fail_severity_are_undecided_never_passing(
    stack: Stack, lambda_context: FakeLambdaContext, push_guard: Handler, audit_watcher: Handler
) -> None:
    scan_recorder = cold_start("scan_recorder", {**stack.environment(), "FAIL_SEVERITY": "LOW"}, lambda_context)
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))

    # When Inspector's summary shows 4 findings, none CRITICAL, HIGH or MEDIUM: LOW ones would fail
    counts = {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "TOTAL": 4}
    scan_recorder(inspector_scan(digest=A, tags=["latest"], time="2026-11-20T09:16:38Z", counts=counts))

    # Then the verdict is undecided: `check` refuses, and a workload deploying it is alerted
    assert verdict(stack, A) == ("undecided", {})
    answer = check(stack, f"{IMAGE}:latest")
    assert (answer["passed"], answer["refusal"]) == (False, "undecided verdict")
    audit_watcher(deployment())
    (alert,) = vulnerable(stack)
    assert (alert.alert.severity, "could not decide" in alert.alert.summary) == (Severity.HIGH, True)

    # When the four findings' events show them INFORMATIONAL or UNTRIAGED
    for number, severity in enumerate(["INFORMATIONAL", "INFORMATIONAL", "UNTRIAGED", "INFORMATIONAL"]):
        finding = f"{number:032x}"
        scan_recorder(inspector_finding(digest=A, time="2026-11-20T09:17:00Z", severity=severity, finding=finding))

    # Then nothing at LOW or above remains: A passes
    assert verdict(stack, A) == ("pass", {"INFORMATIONAL": 3, "UNDEFINED": 1})
    assert check(stack, f"{IMAGE}:latest")["passed"] is True


def test_the_same_counts_decide_under_a_medium_fail_severity(
    stack: Stack, lambda_context: FakeLambdaContext, push_guard: Handler
) -> None:
    scan_recorder = cold_start("scan_recorder", {**stack.environment(), "FAIL_SEVERITY": "MEDIUM"}, lambda_context)
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z"))

    counts = {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "TOTAL": 4}
    scan_recorder(inspector_scan(digest=A, tags=["latest"], time="2026-11-20T09:16:38Z", counts=counts))

    assert verdict(stack, A) == ("pass", {})
