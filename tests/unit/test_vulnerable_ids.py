"""The id of a VULNERABLE_IMAGE_DEPLOYED finding: per failing episode, or per rollout begun after the ledger
learned of the episode; and the episode's recording time as scan states carry and store it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tagwarden.adapters.dynamodb.items import scan_values, stored_scan
from tagwarden.domain.deployments import RECORDING_SKEW, episode_learned_at, vulnerable_alert_id
from tagwarden.domain.images import ImageName
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent, key_time
from tagwarden.domain.workloads import ROLLOUT_WINDOW

IMAGE = ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api")
D = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
WORKLOAD = "prod-eks/shop/Deployment/api"
SCANNED = datetime(2026, 11, 20, 9, 49, 30, tzinfo=UTC)
RECORDED = datetime(2026, 11, 20, 9, 50, tzinfo=UTC)


def state(verdict: Verdict, at: datetime, event_id: str) -> ScanState:
    key = SourceEvent(event_id, at).key
    return ScanState(ScanStatus.COMPLETE, at, "ecr-basic", verdict, {"CRITICAL": 1}, event_key=key)


FAILING = state(Verdict.FAIL, SCANNED, "scan-1").following(None, RECORDED)


def ident(scan: ScanState, rollout: datetime | None) -> str:
    return vulnerable_alert_id(WORKLOAD, IMAGE, D, scan, rollout)


def test_a_failing_episode_starts_at_its_scan_and_is_learned_at_the_recording_time() -> None:
    assert (FAILING.failing_since, FAILING.failing_recorded_at) == (FAILING.event_key, RECORDED)
    # a later failing scan continues the episode, learned when it began; a pass ends it
    later = state(Verdict.FAIL, SCANNED + timedelta(days=1), "scan-2").following(FAILING, RECORDED + timedelta(days=1))
    assert (later.failing_since, later.failing_recorded_at) == (FAILING.failing_since, RECORDED)
    passing = state(Verdict.PASS, SCANNED + timedelta(days=2), "scan-3").following(later, RECORDED)
    assert (passing.failing_since, passing.failing_recorded_at) == (None, None)


def test_workloads_in_use_and_rollouts_under_way_share_the_episode_id() -> None:
    in_use = ident(FAILING, None)  # the scan recorder, which does not read rollouts
    assert ident(FAILING, RECORDED - timedelta(hours=3)) == in_use
    # a rollout begun after the scan's event time but before the ledger learned of it: still the episode
    assert ident(FAILING, SCANNED + timedelta(seconds=10)) == in_use
    # the API server's clock slightly ahead of Lambda's
    assert ident(FAILING, RECORDED + RECORDING_SKEW) == in_use


def test_a_rollout_begun_after_the_ledger_learned_of_the_episode_is_a_finding_of_its_own() -> None:
    rollout = RECORDED + RECORDING_SKEW + timedelta(seconds=1)
    first, again = ident(FAILING, rollout), ident(FAILING, rollout)
    rollback = ident(FAILING, rollout + timedelta(minutes=20))
    assert first == again  # replicas, retries, duplicate deliveries of one rollout
    assert len({ident(FAILING, None), first, rollback}) == 3


def test_a_rollout_a_kubelet_line_started_is_a_reminder_at_most_once_per_rollout_window() -> None:
    # The ROLLOUT_WINDOW rule restarts a day-old rollout when the kubelet reports the content again: within
    # ROLLOUT_WINDOW of the recording that is the episode's finding (the workload was alerted then) ...
    hour_later = RECORDED + timedelta(hours=1)
    assert vulnerable_alert_id(WORKLOAD, IMAGE, D, FAILING, hour_later, kubelet_started=True) == ident(FAILING, None)
    # ... from ROLLOUT_WINDOW after it, a reminder of its own
    day_later = RECORDED + ROLLOUT_WINDOW
    reminder = vulnerable_alert_id(WORKLOAD, IMAGE, D, FAILING, day_later, kubelet_started=True)
    assert reminder == ident(FAILING, day_later) != ident(FAILING, None)
    # a rollout a spec write started (a deployment, a rollback) is a finding of its own at once
    assert ident(FAILING, hour_later) != ident(FAILING, None)


def test_a_new_episode_is_a_new_finding_even_for_the_same_rollout() -> None:
    rollout = RECORDED + timedelta(hours=1)
    passed = state(Verdict.PASS, SCANNED + timedelta(hours=2), "scan-2").following(FAILING, RECORDED)
    failed = state(Verdict.FAIL, SCANNED + timedelta(hours=3), "scan-3").following(
        passed, RECORDED + timedelta(hours=3)
    )
    assert ident(failed, rollout) == ident(failed, None) != ident(FAILING, None)


def test_a_state_recorded_before_recording_times_were_kept_falls_back_on_its_episode_s_event_time() -> None:
    older = ScanState(
        ScanStatus.COMPLETE, SCANNED, "ecr-basic", Verdict.FAIL, {"CRITICAL": 1}, FAILING.event_key, FAILING.event_key
    )
    assert episode_learned_at(older) == SCANNED == key_time(FAILING.event_key or "")
    assert ident(older, SCANNED - timedelta(minutes=5)) == ident(older, None)
    assert ident(older, SCANNED + timedelta(minutes=5)) != ident(older, None)
    # a finding event's revision key (`<key>+<event id>`) starts with a time too; an episode-less state has none
    assert key_time(f"{FAILING.event_key}+evt-2") == SCANNED
    episode_less = ScanState(ScanStatus.COMPLETE, SCANNED, "ecr-basic", Verdict.FAIL, {"CRITICAL": 1})
    assert episode_learned_at(episode_less) is None
    assert ident(episode_less, RECORDED + timedelta(days=1)) == ident(episode_less, None)


def test_the_recording_time_is_stored_with_the_scan_state_and_optional() -> None:
    assert stored_scan(scan_values(FAILING)) == FAILING
    assert scan_values(FAILING)["failing_recorded_at"] == "2026-11-20T09:50:00Z"
    without = scan_values(FAILING)
    del without["failing_recorded_at"]
    assert stored_scan(without).failing_recorded_at is None
