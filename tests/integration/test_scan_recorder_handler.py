"""The scan recorder through its real `lambda_handler`, with ECR basic and Inspector scan events on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from tagwarden.events.parsing import InvalidEventError

from tests.conftest import cold_start
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import Stack

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
A, B, C = ("sha256:" + c * 64 for c in "abc")


def item(stack: Stack, pk: str, sk: str) -> dict[str, Any] | None:
    return next((i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == sk), None)


def digest_scan(stack: Stack, digest: str, repository: str = "shop/api", registry: str = REGISTRY) -> dict[str, Any]:
    record = item(stack, f"IMAGE#{registry}/{repository}@{digest}", "IMAGE")
    assert record is not None, "no digest record"
    scan: dict[str, Any] = record["scan"]["M"]
    return scan


def pointer_scan(stack: Stack, tag: str) -> dict[str, Any] | None:
    pointer = item(stack, f"TAG#{REGISTRY}/shop/api:{tag}", "POINTER")
    assert pointer is not None
    return pointer["scan"]["M"] if "scan" in pointer else None


def scan_entries(stack: Stack, digest: str) -> list[dict[str, Any]]:
    pk = f"IMAGE#{REGISTRY}/shop/api@{digest}"
    return sorted(
        (i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"].startswith("SCAN#")),
        key=lambda i: i["sk"]["S"],
    )


def counts(scan: dict[str, Any]) -> dict[str, int]:
    return {name: int(value["N"]) for name, value in scan["finding_counts"]["M"].items()}


def test_basic_scan_with_sparse_counts_passes_below_the_fail_severity(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/ecr_scan_complete.json")
    digest = event["detail"]["image-digest"]

    assert scan_recorder(event) == {"outcome": "recorded", "alerts": []}

    scan = digest_scan(stack, digest)
    assert (scan["status"]["S"], scan["verdict"]["S"], scan["scanner"]["S"]) == ("COMPLETE", "pass", "ecr-basic")
    assert counts(scan) == {"HIGH": 2, "MEDIUM": 7}
    assert scan["scanned_at"]["S"] == "2026-11-20T09:14:52Z"
    assert len(scan_entries(stack, digest)) == 1


def test_critical_findings_fail_the_scan(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/ecr_scan_complete_critical.json")
    scan_recorder(event)
    assert digest_scan(stack, event["detail"]["image-digest"])["verdict"]["S"] == "fail"


def test_fail_severity_comes_from_configuration(stack: Stack, lambda_context: FakeLambdaContext) -> None:
    handler = cold_start("scan_recorder", {**stack.environment(), "FAIL_SEVERITY": "high"}, lambda_context)
    event = load_event("scan_recorder/ecr_scan_complete.json")
    handler(event)
    assert digest_scan(stack, event["detail"]["image-digest"])["verdict"]["S"] == "fail"


def test_invalid_fail_severity_fails_the_cold_start(stack: Stack, lambda_context: FakeLambdaContext) -> None:
    from tagwarden.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="FAIL_SEVERITY"):
        cold_start("scan_recorder", {**stack.environment(), "FAIL_SEVERITY": "SEVERE"}, lambda_context)


def test_failed_scan_is_recorded_but_does_not_count_as_scanned(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z", status="FAILED"))
    scan = digest_scan(stack, A)
    assert scan["status"]["S"] == "FAILED"
    assert "verdict" not in scan

    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:02:00Z"))

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_OVERWRITTEN, Severity.HIGH)


def test_failed_sample_event_is_recorded(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/ecr_scan_failed.json")
    assert scan_recorder(event)["outcome"] == "recorded"
    assert digest_scan(stack, event["detail"]["image-digest"])["status"]["S"] == "FAILED"


def test_failed_rescan_does_not_undo_a_completed_scan_and_history_keeps_both(
    stack: Stack, scan_recorder: Handler
) -> None:
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T10:01:00Z", counts={"LOW": 1}))
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T11:01:00Z", status="FAILED"))
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T12:01:00Z", counts={"CRITICAL": 1}))
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T09:01:00Z", counts={"HIGH": 4}))  # late

    scan = digest_scan(stack, A)
    assert (scan["status"]["S"], scan["verdict"]["S"], counts(scan)) == ("COMPLETE", "fail", {"CRITICAL": 1})
    assert [e["scan"]["M"]["status"]["S"] for e in scan_entries(stack, A)] == [
        "COMPLETE",
        "COMPLETE",
        "FAILED",
        "COMPLETE",
    ]


def test_scan_is_copied_onto_every_tag_naming_the_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    event = load_event("scan_recorder/ecr_scan_several_tags.json")
    digest, tags = event["detail"]["image-digest"], event["detail"]["image-tags"]
    for minute, tag in enumerate(tags):
        push_guard(ecr_image_action(tag=tag, digest=digest, time=f"2026-11-20T08:0{minute}:00Z"))

    scan_recorder(event)

    for tag in tags:
        scan = pointer_scan(stack, tag)
        assert scan is not None
        assert scan["event_key"]["S"].startswith(event["time"][:19])


def test_scan_with_no_tags_still_reaches_tags_pushed_to_the_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    event = load_event("scan_recorder/ecr_scan_no_tags.json")
    digest = event["detail"]["image-digest"]
    push_guard(ecr_image_action(tag="main", digest=digest, time="2026-11-20T08:00:00Z"))
    assert event["detail"]["image-tags"] == []

    scan_recorder(event)

    assert pointer_scan(stack, "main") is not None


def test_inspector_ecr_scan_is_recorded_under_the_repository_of_its_arn(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/inspector_ecr_scan.json")
    digest = event["detail"]["image-digest"]

    assert scan_recorder(event)["outcome"] == "recorded"

    scan = digest_scan(stack, digest)
    assert (scan["scanner"]["S"], scan["verdict"]["S"]) == ("inspector", "pass")
    assert counts(scan) == {"HIGH": 3, "MEDIUM": 9}
    (entry,) = scan_entries(stack, digest)
    assert entry["reported_total"]["N"] == "21"


def test_inspector_scan_of_an_ec2_instance_is_skipped(stack: Stack, scan_recorder: Handler) -> None:
    assert scan_recorder(load_event("scan_recorder/inspector_ec2_scan.json")) == {"outcome": "ignored", "alerts": []}
    assert stack.items() == []


def test_push_scan_move_alerts_tag_moved_after_scan(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z", event_id="scan-a"))

    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:05:00Z", event_id="attack"))

    (received,) = stack.received_alerts()
    alert = received.alert
    assert (alert.type, alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert (alert.previous_digest, alert.current_digest, alert.scanned_digest) == (A, B, A)
    assert alert.scanned_at is not None
    assert alert.scanned_at.isoformat().startswith("2026-11-20T10:01:00")
    assert alert.evidence == ("attack",)


@pytest.mark.parametrize(
    ("tag", "scan_new_digest", "severity"),
    [
        ("latest", False, Severity.LOW),
        ("main", False, Severity.MEDIUM),
        ("main", True, Severity.INFO),
        ("latest", True, Severity.INFO),
        ("1.4.0", True, Severity.CRITICAL),
    ],
)
def test_moves_away_from_scanned_digests_follow_the_severity_table(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, tag: str, scan_new_digest: bool, severity: Severity
) -> None:
    push_guard(ecr_image_action(tag=tag, digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=[tag], time="2026-11-20T10:01:00Z"))
    if scan_new_digest:
        scan_recorder(ecr_scan(digest=B, tags=[], time="2026-11-20T10:02:00Z"))

    push_guard(ecr_image_action(tag=tag, digest=B, time="2026-11-20T10:05:00Z"))

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, severity)


def test_tag_moved_while_the_scan_ran_is_alerted_when_the_scan_completes(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:30Z"))
    (overwrite,) = stack.received_alerts()
    assert overwrite.alert.type is AlertType.TAG_OVERWRITTEN

    # A lost its tag to B before its scan finished, so ECR reports it with no tags at all.
    scan = ecr_scan(digest=A, tags=[], time="2026-11-20T10:01:00Z", event_id="scan-a")
    result = scan_recorder(scan)

    (received,) = stack.received_alerts()
    alert = received.alert
    assert result["alerts"] == [alert.alert_id]
    assert (alert.type, alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert (alert.tag, alert.previous_digest, alert.current_digest, alert.scanned_digest) == ("1.4.0", A, B, A)
    assert alert.evidence == ("scan-a",)

    assert scan_recorder(scan) == {"outcome": "duplicate", "alerts": []}
    assert stack.received_alerts() == []


def test_rescan_of_a_digest_the_tag_left_long_ago_raises_nothing(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z"))
    stack.received_alerts()

    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-21T10:01:00Z"))

    assert stack.received_alerts() == []


def test_tag_moved_to_a_scanned_digest_during_the_scan_raises_nothing_at_scan_time(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    scan_recorder(ecr_scan(digest=B, tags=[], time="2026-11-20T09:00:00Z"))
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:00:30Z"))
    stack.received_alerts()

    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T10:01:00Z"))

    assert stack.received_alerts() == []


def test_scan_that_arrives_before_its_push_is_seen_by_the_push(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T10:01:00Z"))
    assert stack.received_alerts() == []

    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))

    scan = pointer_scan(stack, "latest")
    assert scan is not None
    assert scan["status"]["S"] == "COMPLETE"
    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z"))
    (received,) = stack.received_alerts()
    assert received.alert.type is AlertType.TAG_MOVED_AFTER_SCAN


def test_duplicate_scan_changes_nothing(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    event = ecr_scan(digest=A, tags=["latest"], time="2026-11-20T10:01:00Z")
    scan_recorder(event)
    before = stack.items()

    assert scan_recorder(event) == {"outcome": "duplicate", "alerts": []}
    assert stack.items() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["detail"].pop("repository-name"), "repository-name"),
        (lambda e: e["detail"].update({"finding-severity-counts": {"HIGH": -1}}), "finding-severity-counts"),
        (lambda e: e["detail"].update({"image-tags": "latest"}), "image-tags"),
        (lambda e: e.update({"source": "aws.s3"}), "source"),
    ],
)
def test_invalid_scan_event_names_the_field_and_writes_nothing(
    stack: Stack, scan_recorder: Handler, change: Any, field: str
) -> None:
    event = ecr_scan(digest=A, tags=["latest"], time="2026-11-20T10:01:00Z")
    change(event)
    with pytest.raises(InvalidEventError, match=field):
        scan_recorder(event)
    assert stack.items() == []


def test_inspector_repository_must_be_an_arn(stack: Stack, scan_recorder: Handler) -> None:
    event = load_event("scan_recorder/inspector_ecr_scan.json")
    event["detail"]["repository-name"] = "shop/api#POINTER"
    with pytest.raises(InvalidEventError, match="repository-name"):
        scan_recorder(event)


def test_scan_while_the_tag_is_deleted_still_counts_for_the_push_that_follows(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="1.4.0", digest=A, action="DELETE", time="2026-11-20T10:00:10Z"))
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T10:00:40Z"))

    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:01:00Z"))

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert received.alert.scanned_digest == A


def test_a_digest_with_more_tags_than_a_transaction_holds_is_recorded(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    tags = [f"build-{n}" for n in range(120)]
    for tag in tags:
        push_guard(ecr_image_action(tag=tag, digest=A, time="2026-11-20T10:00:00Z"))

    assert scan_recorder(ecr_scan(digest=A, tags=tags, time="2026-11-20T10:01:00Z"))["outcome"] == "recorded"

    assert all(pointer_scan(stack, tag) is not None for tag in tags)


def test_a_scan_landing_between_a_push_s_read_and_write_sends_the_push_back_to_read(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    from tagwarden.adapters.dynamodb.table import LedgerTable
    from tagwarden.adapters.dynamodb.tag_ledger import DynamoDbTagLedger
    from tagwarden.domain.images import ImageName
    from tagwarden.domain.rules import decide_current
    from tagwarden.domain.sources import SourceEvent
    from tagwarden.domain.tag_policy import TagPolicy
    from tagwarden.domain.tags import ImageAction, TagAction
    from tagwarden.ports import ConcurrentUpdateError

    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    ledger = DynamoDbTagLedger(LedgerTable(stack.dynamodb, stack.table_name))
    push = ImageAction(
        TagAction.PUSH,
        ImageName(REGISTRY, "shop/api"),
        B,
        "1.4.0",
        SourceEvent("race", datetime(2026, 11, 20, 10, 1, tzinfo=UTC), "111122223333", "eu-west-1"),
    )
    tag = push.tag_ref
    assert tag is not None
    snapshot = ledger.read_for_action(tag, push)  # B has no scan yet
    scan_recorder(ecr_scan(digest=B, tags=[], time="2026-11-20T10:00:30Z"))  # B's scan commits meanwhile
    decision = decide_current(push, tag, snapshot.pointer, snapshot.scans, TagPolicy(), datetime.now(UTC))

    with pytest.raises(ConcurrentUpdateError):
        ledger.apply(tag, push, decision, snapshot.pointer, datetime.now(UTC))
