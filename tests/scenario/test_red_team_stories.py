"""Stories a red team found on real traffic, each once a miss or a false alarm, kept as regressions.

Each goes through the real handlers on moto with the same builders as the other real-traffic stories.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.scenario.test_real_traffic_audit import deployment_alerts, rollout
from tests.scenario.test_real_traffic_findings import recently
from tests.support.audit import ECR, audit_line, envelope, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.inspector import inspector_finding, inspector_scan
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
IMAGE = f"{ECR}/shop/api"
CVE = "9b7e1c04d2a64f3e8a15c6d7e0f92b41"
LONG_TAG = "build-" + "x" * 200  # ECR accepts tags of up to 300 characters; the ledger keys 128


def test_a_finding_on_an_image_with_a_tag_too_long_for_the_ledger_is_not_lost(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given latest -> A, scanned clean, and running
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T09:01:00Z", counts={"LOW": 1}))
    audit_watcher(envelope([recently(with_images(audit_line("deployment_create.json"), f"{IMAGE}:latest"))]))
    stack.received_alerts()
    # When Inspector reports a CRITICAL finding on A, which someone also tagged with a 206-character tag
    finding = inspector_finding(digest=A, time="2026-11-20T10:00:00Z", severity="CRITICAL", tags=["latest", LONG_TAG])
    scan_recorder(finding)
    # Then the finding is applied (the long tag skipped) and the running workload is alerted
    assert [r.alert.type for r in stack.received_alerts()] == [AlertType.VULNERABLE_IMAGE_DEPLOYED]


def test_a_push_of_a_tag_too_long_for_the_ledger_is_ignored_with_its_reason_not_a_failure(
    stack: Stack, push_guard: Handler
) -> None:
    assert push_guard(ecr_image_action(tag=LONG_TAG, digest=A, time="2026-11-20T09:00:00Z")) == {
        "outcome": "ignored",
        "alerts": [],
    }


def test_findings_inspector_closes_when_it_stops_monitoring_do_not_clear_a_vulnerable_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given v1.0.0 -> A, whose initial Inspector scan found 1 CRITICAL (and its finding event)
    push_guard(ecr_image_action(tag="v1.0.0", digest=A, time="2026-10-01T08:00:00Z"))
    counts = {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "TOTAL": 1}
    scan_recorder(inspector_scan(digest=A, tags=["v1.0.0"], time="2026-10-01T08:02:00Z", counts=counts))
    scan_recorder(inspector_finding(digest=A, time="2026-10-01T08:02:05Z", severity="CRITICAL", finding=CVE))
    # When Inspector closes the finding 14 days later (the ECR rescan duration ran out: A did not change)
    closed = inspector_finding(digest=A, time="2026-10-15T08:02:05Z", severity="CRITICAL", finding=CVE, status="CLOSED")
    scan_recorder(closed)
    stack.received_alerts()
    # And someone rolls a workload back to v1.0.0
    audit_watcher(envelope([rollout(f"{IMAGE}:v1.0.0", "09:31:04", "r1")]))
    # Then it is still known-vulnerable content
    assert [(a.type, a.severity) for a in deployment_alerts(stack)] == [
        (AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL)
    ]


def test_a_deployable_tag_named_like_a_signature_tag_keeps_its_real_severity(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given a real tag named `sha256-prod` (no digest in it), scanned and in use
    tag = "sha256-prod"
    push_guard(ecr_image_action(tag=tag, digest=A, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=[tag], time="2026-11-20T09:01:00Z", counts={"LOW": 1}))
    audit_watcher(envelope([recently(with_images(audit_line("deployment_create.json"), f"{IMAGE}:{tag}"))]))
    stack.received_alerts()
    # When it moves to unscanned content
    push_guard(ecr_image_action(tag=tag, digest=B, time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    # Then it is an ordinary tag in use: MEDIUM raised to HIGH, not a signature tag's LOW
    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.HIGH)


def test_a_critical_finding_on_a_digest_without_a_scan_summary_makes_it_vulnerable(
    stack: Stack, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given Inspector's only news of A is a CRITICAL finding (its one Scan summary was missed)
    scan_recorder(inspector_finding(digest=A, time="2026-11-20T10:00:00Z", severity="CRITICAL"))
    stack.received_alerts()
    # When a workload deploys A by digest
    audit_watcher(envelope([recently(with_images(audit_line("deployment_create.json"), f"{IMAGE}@{A}"))]))
    # Then it deploys known-vulnerable content, not merely unscanned content
    assert [(r.alert.type, r.alert.severity) for r in stack.received_alerts()] == [
        (AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL)
    ]
