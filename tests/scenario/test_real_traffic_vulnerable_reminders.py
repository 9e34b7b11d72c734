"""A workload still running known-failing content is reminded at most once per ROLLOUT_WINDOW (README: "reminded
at most once a day"), through the real handlers on moto.

Red team s17, finding 6: the rollout began on day 1, the failure was learned on day 2 at 09:00 (the workload
alerted with the episode's id), and the 24-hour window restarted the rollout at 10:05: a second CRITICAL came
an hour after the first. A rollout the window rule starts counts as later than the recording only
ROLLOUT_WINDOW after it; a rollback (other content rolled out between) still does at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.scenario.test_real_traffic_vulnerable_rollbacks import B, D, pod, recorder_at, rollout, vulnerable
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.stack import Stack


def on_day(line: dict[str, Any], day: int) -> dict[str, Any]:
    """The audit line dated 2026-11-<day> instead of 2026-11-20 (same time of day)."""
    for field in ("requestReceivedTimestamp", "stageTimestamp"):
        line[field] = line[field].replace("2026-11-20", f"2026-11-{day}")
    return line


def d_running_then_failing(stack: Stack, push_guard: Handler, audit_watcher: Handler) -> None:
    """shop/api rolled out D on the 20th at 10:00 (D passing then); a rescan fails D on the 21st, recorded at
    09:00: the scan recorder alerts the workload, with the failing episode's id."""
    push_guard(ecr_image_action(tag="1.0.0", digest=D, time="2026-11-20T09:40:00Z"))
    push_guard(ecr_image_action(tag="1.0.1", digest=B, time="2026-11-20T09:41:00Z"))
    recorder = recorder_at(stack, "09:50:00")
    recorder(ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-20T09:49:30Z", counts={"LOW": 1}))
    recorder(ecr_scan(digest=B, tags=["1.0.1"], time="2026-11-20T09:49:40Z", counts={"LOW": 1}))
    audit_watcher(envelope_of([rollout(D, "10:00:00", "r-1"), pod("api-7d9f8c6b5d-x2k9p", D, "10:00:30")]))
    assert stack.received_alerts() == []
    module = load_function_module("scan_recorder", stack.environment())
    module.SCAN_RECORDER._clock = lambda: datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    rescan = ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-21T08:59:30Z", counts={"CRITICAL": 1})
    module.lambda_handler(rescan, FakeLambdaContext())
    assert len(vulnerable(stack)) == 1


def envelope_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.support.audit import envelope

    return envelope(lines)


def test_a_workload_alerted_when_the_episode_began_is_not_reminded_an_hour_later(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    d_running_then_failing(stack, push_guard, audit_watcher)
    # When the kubelet reports the same pod at 10:05 on the 21st (24 hours after the rollout began: the
    # window rule starts a new rollout of D)
    audit_watcher(envelope_of([on_day(pod("api-7d9f8c6b5d-x2k9p", D, "10:05:00"), 21)]))
    # Then no second CRITICAL an hour after the first
    assert vulnerable(stack) == []
    # When the pod is still reported through the day, nothing either
    audit_watcher(envelope_of([on_day(pod("api-7d9f8c6b5d-x2k9p", D, "23:00:00"), 21)]))
    assert vulnerable(stack) == []
    # When it is reported on the 22nd at 10:10, more than a day after the first alert: one reminder
    audit_watcher(envelope_of([on_day(pod("api-7d9f8c6b5d-x2k9p", D, "10:10:00"), 22)]))
    (reminder,) = vulnerable(stack)
    assert reminder.current_digest == D
    audit_watcher(envelope_of([on_day(pod("api-7d9f8c6b5d-x2k9p", D, "10:15:00"), 22)]))
    assert vulnerable(stack) == []


def test_a_rollback_an_hour_after_the_recording_is_still_alerted_at_once(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    d_running_then_failing(stack, push_guard, audit_watcher)
    # When the team rolls out B on the 21st at 09:30, then rolls back to D at 10:05 (D's previous rollout
    # began more than a day before, but B's lies between: a rollback, not a restart)
    audit_watcher(envelope_of([on_day(rollout(B, "09:30:00", "r-2"), 21)]))
    audit_watcher(envelope_of([on_day(rollout(D, "10:05:00", "r-3"), 21)]))
    # Then the rollback to known-failing D is a finding of its own
    (alert,) = vulnerable(stack)
    assert alert.current_digest == D
