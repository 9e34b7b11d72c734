"""Rollouts of content already known to be vulnerable, through the real handlers on moto.

A VULNERABLE_IMAGE_DEPLOYED finding is one per workload, content and failing episode, except that a rollout
of the content begun after the ledger learned of the episode (the scan recorder's clock when it recorded
the failing state) is a finding of its own: a rollback to a known-vulnerable image is reported again, while
the scan recorder (which alerts workloads in use when the verdict turns) and the audit watcher still agree
on one id for a rollout already under way, even when the scan's event reaches the ledger after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tagwarden.domain.alerts import Alert, AlertType
from tagwarden.domain.workloads import ROLLOUT_WINDOW

from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.stack import Stack

D = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
IMAGE = f"{ECR}/shop/api"


def rollout(digest: str, moment: str, audit_id: str) -> dict[str, Any]:
    """The Deployment `shop/api` written with `shop/api@<digest>` at `moment` (HH:MM:SS on 2026-11-20)."""
    line = at(with_images(audit_line("deployment_create.json"), f"{IMAGE}@{digest}"), moment)
    line["auditID"] = audit_id
    return line


def pod(name: str, digest: str, moment: str) -> dict[str, Any]:
    """A kubelet reporting a pod of shop/api running `digest`."""
    return at(kubelet_status(name, f"{IMAGE}@{digest}", f"{IMAGE}@{digest}", f"k-{name}"), moment)


def recorder_at(stack: Stack, moment: str) -> Handler:
    """The real scan recorder whose clock reads `moment` (2026-11-20): when the ledger learns what it records."""
    module = load_function_module("scan_recorder", stack.environment())
    now = datetime.fromisoformat(f"2026-11-20T{moment}+00:00")
    module.SCAN_RECORDER._clock = lambda: now
    assert now.tzinfo is UTC

    def invoke(event: dict[str, Any]) -> Any:
        return module.lambda_handler(event, FakeLambdaContext())

    return invoke


def vulnerable(stack: Stack) -> list[Alert]:
    return [r.alert for r in stack.received_alerts() if r.alert.type is AlertType.VULNERABLE_IMAGE_DEPLOYED]


def test_a_rollback_to_known_vulnerable_content_alerts_again_once(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given D failed its scan (recorded at 09:50) and B passed
    push_guard(ecr_image_action(tag="1.0.0", digest=D, time="2026-11-20T09:40:00Z"))
    push_guard(ecr_image_action(tag="1.0.1", digest=B, time="2026-11-20T09:41:00Z"))
    recorder_at(stack, "09:50:00")(
        ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-20T09:49:30Z", counts={"CRITICAL": 1})
    )
    scan_recorder(ecr_scan(digest=B, tags=["1.0.1"], time="2026-11-20T09:49:40Z", counts={"LOW": 2}))
    assert stack.received_alerts() == []

    # When shop/api rolls out D (two replicas), then B, then back to D (two replicas again)
    first = envelope(
        [
            rollout(D, "10:00:00", "r-1"),
            pod("api-7d9f8c6b5d-x2k9p", D, "10:00:20"),
            pod("api-7d9f8c6b5d-m4n7q", D, "10:00:25"),
        ]
    )
    second = envelope(
        [
            rollout(B, "10:10:00", "r-2"),
            pod("api-5c8b7a6d4f-h3j8k", B, "10:10:20"),
            pod("api-7d9f8c6b5d-x2k9p", D, "10:10:30"),
        ]
    )
    rollback = envelope(
        [
            rollout(D, "10:20:00", "r-3"),
            pod("api-7d9f8c6b5d-t6w2z", D, "10:20:20"),
            pod("api-7d9f8c6b5d-b9c4v", D, "10:20:25"),
        ]
    )
    audit_watcher(first)
    (deployed,) = vulnerable(stack)
    audit_watcher(second)
    assert stack.received_alerts() == []
    audit_watcher(rollback)

    # Then the rollback to D is reported again, once, whatever the replicas
    (rolled_back,) = vulnerable(stack)
    assert (rolled_back.current_digest, rolled_back.kubernetes and rolled_back.kubernetes.kind) == (D, "Deployment")
    assert rolled_back.alert_id != deployed.alert_id

    # And every delivery again (CloudWatch redelivers), and a late replica of the rollback, raise nothing
    for delivery in (first, second, rollback, envelope([pod("api-7d9f8c6b5d-r5s8d", D, "10:21:00")])):
        audit_watcher(delivery)
    assert stack.received_alerts() == []

    # And a rescan that still fails D raises nothing: no change of verdict
    recorder_at(stack, "11:00:00")(
        ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-20T10:59:30Z", counts={"CRITICAL": 2})
    )
    assert stack.received_alerts() == []

    # When the workload, still running D, is seen again a day later (ROLLOUT_WINDOW after the rollback began)
    assert timedelta(hours=24) == ROLLOUT_WINDOW
    next_day = pod("api-7d9f8c6b5d-t6w2z", D, "10:20:00")
    next_day["requestReceivedTimestamp"] = next_day["stageTimestamp"] = "2026-11-21T10:21:00.000000Z"
    audit_watcher(envelope([next_day]))

    # Then it is reminded once, as for any finding seen again after the window
    (reminded,) = vulnerable(stack)
    assert reminded.alert_id not in {deployed.alert_id, rolled_back.alert_id}
    audit_watcher(envelope([next_day]))
    assert stack.received_alerts() == []


def test_a_scan_event_arriving_after_the_rollout_it_predates_alerts_the_rollout_once(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given D pushed, and its scan completed at 10:00 but its event not delivered yet
    push_guard(ecr_image_action(tag="1.0.0", digest=D, time="2026-11-20T09:40:00Z"))
    failing = ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-20T10:00:00Z", counts={"CRITICAL": 1})

    # When shop/api rolls out D at 10:05 (unscanned as far as the ledger knows: that is alerted),
    rolled_out = envelope([rollout(D, "10:05:00", "r-1"), pod("api-7d9f8c6b5d-x2k9p", D, "10:05:20")])
    audit_watcher(rolled_out)
    assert [r.alert.type for r in stack.received_alerts()] == [AlertType.UNSCANNED_IMAGE_DEPLOYED]
    # and the scan's event reaches the ledger at 10:08, after the rollout it predates,
    recorder_at(stack, "10:08:00")(failing)

    # Then the scan recorder alerts the workload using D
    (alert,) = vulnerable(stack)
    assert [(s.namespace, s.workload) for s in alert.in_use] == [("shop", "api")]

    # And the audit watcher, seeing that rollout again (a redelivery, another replica's report), raises the
    # same finding, not a second one: the rollout began before the ledger learned of the failing episode
    # (by the scan event's own time, 10:00, it would have looked like a later rollout).
    audit_watcher(rolled_out)
    audit_watcher(envelope([pod("api-7d9f8c6b5d-m4n7q", D, "10:06:00")]))
    assert stack.received_alerts() == []

    # When the Deployment's spec is written again with D later (no other content in between: the same
    # rollout, not a rollback), nothing more
    audit_watcher(envelope([rollout(D, "10:30:00", "r-2")]))
    assert stack.received_alerts() == []
