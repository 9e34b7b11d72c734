"""Whole attack stories, told as AWS would deliver them, through all three real handlers."""

from __future__ import annotations

import json

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from demo.__main__ import main as demo_main
from tests.support.audit import ECR, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"


def test_the_demo_catches_the_mutant_tag_attack_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(["--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert sorted((a["type"], a["severity"], a["tag"]) for a in alerts) == [
        ("DEPLOYED_DIGEST_MISMATCH", "CRITICAL", "latest"),
        ("TAG_MOVED_AFTER_SCAN", "CRITICAL", "1.4.0"),
        ("TAG_MOVED_AFTER_SCAN", "MEDIUM", "latest"),
        ("UNSCANNED_IMAGE_DEPLOYED", "HIGH", "latest"),
    ]
    assert all(a["schema"] == "tagwarden.alert.v1" for a in alerts)


@pytest.mark.dynamodb_local
def test_the_demo_runs_on_dynamodb_local(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(["--dynamodb-local"]) == 0
    assert "all 4 expected alerts arrived" in capsys.readouterr().out


def test_race_between_the_scanner_pull_and_the_deployment(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    """CI pushes 1.4.0 and waits for its scan; meanwhile the attacker pushes over it; CI deploys 1.4.0."""
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:20Z"))  # while A is scanned
    scan_recorder(ecr_scan(digest=A, tags=[], time="2026-11-20T10:00:45Z"))  # CI reads "the scan of 1.4.0"
    image = f"{ECR}/shop/api:1.4.0"
    deployment = with_images(audit_line("deployment_create.json"), image)
    deployment["stageTimestamp"] = "2026-11-20T10:01:04.931085Z"  # CI deploys once the scan is reported
    running = kubelet_status("api-7d9f8c6b5d-x2k9p", image, f"{ECR}/shop/api@{B}")
    running["stageTimestamp"] = "2026-11-20T10:01:19.419012Z"
    audit_watcher(envelope([deployment]))
    audit_watcher(envelope([running]))

    received = [(r.alert.type, r.alert.severity) for r in stack.received_alerts()]

    assert received == [
        (AlertType.TAG_OVERWRITTEN, Severity.HIGH),  # the push: a protected tag moved
        (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL),  # the scan: its result is for A, the tag names B
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, Severity.HIGH),  # the Deployment names 1.4.0, i.e. B
        (AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL),  # the kubelet runs B, not the scanned A
    ]


def test_immutability_workaround_delete_then_push(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> None:
    """Registry immutability blocks overwriting a tag, not deleting it and pushing again."""
    push_guard(ecr_image_action(tag="v2.0.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["v2.0.0"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="v2.0.0", digest=A, action="DELETE", time="2026-11-21T03:00:00Z"))
    push_guard(ecr_image_action(tag="v2.0.0", digest=B, time="2026-11-21T03:00:05Z"))

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert "deleted and pushed again" in received.alert.summary


def test_a_promotion_to_a_scanned_release_is_informational(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    """`stable` moving to a release that passed its scan is routine, and says so."""
    push_guard(ecr_image_action(tag="stable", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["stable"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="2.1.0", digest=B, time="2026-11-22T10:00:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=["2.1.0"], time="2026-11-22T10:01:00Z"))
    push_guard(ecr_image_action(tag="stable", digest=B, time="2026-11-23T10:00:00Z"))

    (received,) = stack.received_alerts()
    assert received.alert.severity is Severity.INFO
