"""A platform manifest held by busy indexes: what one finding or rescan of it writes stays within one
DynamoDB transaction's 100 items, whatever the number of indexes and of workloads running them.

Red team s17, finding 1: two indexes sharing a platform, 50 workloads running each, made the scan recorder's
transaction 105 items (ValidationException, retried to the dead-letter queue, both indexes left passing).
Through the real handlers on moto's ECR holding real indexes.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from tagwarden.adapters.dynamodb import scan_ledger
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.scan_rules import MAX_IN_USE_ALERTS
from tagwarden.ports import ConcurrentUpdateError

from tests.scenario.test_real_traffic_index_findings import DAY, IMAGE, finding, pointer_verdict, verdict
from tests.scenario.test_real_traffic_index_findings import release as release  # the fixture
from tests.support.audit import at, envelope, kubelet_status
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.inspector import inspector_scan
from tests.support.multiarch import OCI_INDEX, Build, build, manifest_push, put_build
from tests.support.stack import REGION, Stack

# The transaction limit is lowered for the many-indexes story (moto takes about a second per index push):
# 24 indexes against a limit of 20 take the same path as 101 indexes against DynamoDB's 100.
LOWERED_TRANSACTION_ITEMS = 20
INDEXES = 24
FAILING = {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 0, "TOTAL": 2}


def vulnerable(stack: Stack) -> list[Any]:
    return [r.alert for r in stack.received_alerts() if r.alert.type is AlertType.VULNERABLE_IMAGE_DEPLOYED]


def fail_arm64(pushed: Build, scan_recorder: Handler, via: str) -> None:
    """A CRITICAL on the arm64 platform manifest: Inspector's finding event, or a rescan's summary."""
    if via == "finding":
        scan_recorder(finding(pushed, "linux/arm64", "2026-11-25T06:00:00Z"))
    else:
        digest = pushed.digest("linux/arm64")
        scan_recorder(inspector_scan(digest=digest, tags=[], time="2026-11-25T06:00:00Z", counts=FAILING))


def running(workloads: list[tuple[str, str]], moment: str) -> dict[str, Any]:
    """One delivery of kubelet statuses: workload n runs the index of its (tag, index digest)."""
    lines = []
    for n, (tag, index) in enumerate(workloads):
        status = kubelet_status(f"w{n:03d}-6f9d7c8b5-r2x7k", f"{IMAGE}:{tag}", f"{IMAGE}@{index}", f"k-{n}")
        lines.append(at(status, moment))
    return envelope(lines)


@pytest.mark.parametrize("via", ["finding", "rescan"])
def test_a_critical_on_a_platform_of_two_busy_indexes_is_recorded_and_every_workload_alerted_once(
    stack: Stack, release: Build, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, via: str
) -> None:
    # Given a second index holding the same platform manifests (built without attestations), tagged 3.0.0-slim
    ecr = boto3.client("ecr", region_name=REGION)
    twin = build("api 3.0.0", attest=False)
    put_build(ecr, "shop/api", twin, "3.0.0-slim")
    push_guard(manifest_push(digest=twin.index_digest, time=f"{DAY}T09:30:00Z", tag="3.0.0-slim", index=True))
    # And 50 workloads running each index (the kubelet reports the index digest)
    workloads = [("3.0.0", release.index_digest)] * 50 + [("3.0.0-slim", twin.index_digest)] * 50
    audit_watcher(running(workloads, "10:10:00"))
    stack.received_alerts()

    # When Inspector reports a CRITICAL on the shared arm64 manifest (no exception: not retried to the DLQ)
    fail_arm64(release, scan_recorder, via)

    # Then the platform and both indexes fail, and the tags naming the indexes carry it
    assert verdict(stack, release.digest("linux/arm64")) == "fail"
    assert verdict(stack, release.index_digest) == "fail"
    assert verdict(stack, twin.index_digest) == "fail"
    assert pointer_verdict(stack, "3.0.0") == (release.index_digest, "fail")
    assert pointer_verdict(stack, "3.0.0-slim") == (twin.index_digest, "fail")
    # And the recorder alerts at most MAX_IN_USE_ALERTS workloads (one transaction item each)
    first = vulnerable(stack)
    assert len(first) == MAX_IN_USE_ALERTS == 50
    assert len({a.alert_id for a in first}) == len(first)
    # And the audit watcher, seeing the workloads again, raises the same finding for each of the others, once
    audit_watcher(running(workloads, "10:20:00"))
    rest = vulnerable(stack)
    assert len(rest) == 100 - MAX_IN_USE_ALERTS
    assert len({a.alert_id for a in first + rest}) == 100
    assert sorted(a.current_digest for a in first + rest) == sorted(index for _, index in workloads)
    audit_watcher(running(workloads, "10:30:00"))
    fail_arm64(release, scan_recorder, via)  # the same event again
    assert vulnerable(stack) == []


def sharing_index(pushed: Build, n: int) -> Build:
    """An index of the build's two platform manifests, told apart by an annotation (as `docker buildx
    imagetools create --annotation index:...` makes them): the same platforms, another index digest."""
    entries = json.loads(pushed.index)["manifests"]
    platforms = [entry for entry in entries if "annotations" not in entry]
    document = {
        "mediaType": OCI_INDEX,
        "schemaVersion": 2,
        "manifests": platforms,
        "annotations": {"org.opencontainers.image.version": f"3.0.0-build.{n}"},
    }
    index = (json.dumps(document, indent=2) + "\n").encode()
    return Build(index, dict(pushed.platforms))


def test_a_critical_on_a_platform_held_by_more_indexes_than_a_transaction_holds_fails_every_index(
    stack: Stack,
    release: Build,
    push_guard: Handler,
    scan_recorder: Handler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given more indexes holding the release's platform manifests (nightly re-tags of one build) than one
    # transaction holds, each tagged, none run by a workload
    monkeypatch.setattr(scan_ledger, "MAX_TRANSACTION_ITEMS", LOWERED_TRANSACTION_ITEMS)
    ecr = boto3.client("ecr", region_name=REGION)
    indexes = [sharing_index(release, n) for n in range(INDEXES)]
    for n, index in enumerate(indexes):
        put_build(ecr, "shop/api", index, f"3.0.0-build.{n}")
        push_guard(
            manifest_push(digest=index.index_digest, time=f"{DAY}T09:30:00Z", tag=f"3.0.0-build.{n}", index=True)
        )
    assert verdicts(stack, indexes) == {"pass"}

    # When Inspector reports a CRITICAL on the shared arm64 manifest, and the first attempt's last transaction
    # (the platform's own state, with most indexes') loses to a concurrent writer after the indexes written
    # ahead of it were written: the recorder reads again and decides again
    module = load_function_module("scan_recorder", stack.environment())
    table = module.SCAN_RECORDER._ledger._table
    real_transact = table.transact
    operations: list[str] = []

    def losing_once(operation: str, writes: Any) -> None:
        operations.append(operation)
        if operation == "TransactWriteItems scan" and operations.count(operation) == 1:
            raise ConcurrentUpdateError("the last transaction lost to a concurrent writer")
        real_transact(operation, writes)

    table.transact = losing_once
    module.lambda_handler(finding(release, "linux/arm64", "2026-11-25T06:00:00Z"), FakeLambdaContext())
    assert operations.count("TransactWriteItems scan") == 2
    assert "TransactWriteItems scan pointers" in operations

    # Then the platform's own state is recorded, and every index and the tag naming it fail
    assert verdict(stack, release.digest("linux/arm64")) == "fail"
    assert verdict(stack, release.index_digest) == "fail"
    assert verdicts(stack, indexes) == {"fail"}
    # And the workload running the release (the fixture's Deployment) is alerted once
    (alert,) = vulnerable(stack)
    assert alert.current_digest == release.index_digest

    # When the finding is suppressed, every index passes again
    scan_recorder(finding(release, "linux/arm64", "2026-11-26T06:00:00Z", status="SUPPRESSED"))
    assert verdict(stack, release.index_digest) == "pass"
    assert verdicts(stack, indexes) == {"pass"}


def verdicts(stack: Stack, indexes: list[Build]) -> set[str]:
    """The verdicts of the indexes' records and of the pointers of the tags naming them (one table scan)."""
    by_key = {(i["pk"]["S"], i["sk"]["S"]): i for i in stack.items()}
    found = set()
    for n, index in enumerate(indexes):
        record = by_key[(f"IMAGE#{IMAGE}@{index.index_digest}", "IMAGE")]
        pointer = by_key[(f"TAG#{IMAGE}:3.0.0-build.{n}", "POINTER")]
        assert pointer["digest"]["S"] == index.index_digest
        found |= {record["scan"]["M"]["verdict"]["S"], pointer["scan"]["M"]["verdict"]["S"]}
    return found
