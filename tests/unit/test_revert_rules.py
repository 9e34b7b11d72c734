"""Opt-in revert as plain rules: which overwrites ask for one, how the revert's own push is recognised, and
what the reverter does with what the registry holds (domain.revert's table)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from tagwarden.domain.alerts import RevertOutcome, RevertStatus
from tagwarden.domain.images import ImageName
from tagwarden.domain.revert import (
    Mutability,
    PendingRevert,
    RegistryView,
    RevertAction,
    RevertRequest,
    RevertScope,
    RevertTarget,
    decide_revert,
    request_revert,
    with_outcome,
)
from tagwarden.domain.rules import Neighbours, decide_current, decide_late
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import REVERT_PUSH_WINDOW, ImageAction, TagAction, TagMove, TagPointer, TagRef

IMAGE = ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api")
TAG = TagRef(IMAGE, "1.4.0")
A, B, C = ("sha256:" + c * 64 for c in "abc")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = TagPolicy()
SCOPE = RevertScope(("shop/",), "111122223333", "eu-west-1")


def source(minute: int) -> SourceEvent:
    return SourceEvent(f"evt-{minute}", datetime(2026, 11, 20, 10, minute, tzinfo=UTC), "111122223333")


def push(digest: str, minute: int, tag: TagRef = TAG) -> ImageAction:
    return ImageAction(TagAction.PUSH, tag.image, digest, tag.tag, source(minute))


def pointer(
    digest: str | None,
    minute: int,
    revert_to: str | None = None,
    last: str | None = None,
    settled_at: datetime | None = None,
) -> TagPointer:
    request = source(minute).key if revert_to else None
    return TagPointer(
        digest, last or digest or A, source(minute).key, 3, revert_to=revert_to, revert_request=request,
        revert_settled_at=settled_at,
    )  # fmt: skip


def current(action: ImageAction, at: TagPointer | None, scope: RevertScope = SCOPE) -> tuple[TagMove, TagPointer]:
    tag = action.tag_ref
    assert tag is not None
    decision = request_revert(decide_current(action, tag, at, {}, POLICY, NOW), tag, scope, POLICY)
    assert decision.pointer is not None
    return decision.move, decision.pointer


def test_an_overwrite_in_scope_asks_to_put_the_previous_content_back() -> None:
    move, after = current(push(B, 2), pointer(A, 1))

    assert (move.revert_requested, move.revert_to, after.revert_to) == (True, A, A)
    assert len(move.alerts) == 1  # still alerted (the reverter publishes it, with the outcome)


@pytest.mark.parametrize(
    ("tag", "scope"),
    [(TagRef(IMAGE, "latest"), SCOPE), (TAG, RevertScope(("platform/",))), (TAG, RevertScope(("",)))],
    ids=["unprotected tag", "repository outside the prefixes", "an empty prefix means none, not all"],
)
def test_no_request_outside_the_scope(tag: TagRef, scope: RevertScope) -> None:
    move, after = current(push(B, 2, tag), pointer(A, 1), scope)

    assert (move.revert_requested, after.revert_to) == (False, None)


def test_a_second_overwrite_keeps_the_original_target() -> None:
    move, after = current(push(C, 3), pointer(B, 2, revert_to=A))

    assert (move.revert_requested, move.revert_to, after.revert_to) == (True, A, A)


def test_delete_then_push_reverts_to_the_content_before_the_delete() -> None:
    move, _ = current(push(B, 3), pointer(None, 2, last=A))

    assert (move.revert_requested, move.revert_to) == (True, A)


def test_the_push_back_to_the_target_is_the_revert_history_only() -> None:
    move, after = current(push(A, 3), pointer(B, 2, revert_to=A))

    assert (move.reverts, move.alerts, move.alerted, move.revert_requested) == (True, (), True, False)
    assert (after.digest, after.revert_to) == (A, None)


def test_a_delete_or_a_same_content_push_keeps_the_revert_outstanding() -> None:
    delete = ImageAction(TagAction.DELETE, IMAGE, B, "1.4.0", source(3))
    decided = decide_current(delete, TAG, pointer(B, 2, revert_to=A), {}, POLICY, NOW)
    assert decided.pointer is not None and decided.pointer.revert_to == A
    _, after = current(push(B, 3), pointer(B, 2, revert_to=A))
    assert after.revert_to == A


def test_a_late_revert_push_is_recognised_from_its_predecessor() -> None:
    before = TagMove(TagAction.PUSH, B, A, source(2), revert_to=A, revert_requested=True, alerted=True)
    after = TagMove(TagAction.PUSH, C, B, source(5), revert_to=A, revert_requested=True, alerted=True)

    decision = decide_late(push(A, 3), TAG, Neighbours(before, after), {}, POLICY, NOW)

    assert (decision.move.reverts, decision.alerts, decision.move.alerted) == (True, (), True)


def test_a_late_push_of_a_refused_revert_target_is_not_the_revert() -> None:
    before = TagMove(
        TagAction.PUSH, B, A, source(2), revert_to=A, revert_requested=True, alerted=True,
        revert_status=RevertStatus.NOT_REVERTED,
    )  # fmt: skip
    after = TagMove(TagAction.PUSH, C, B, source(5), alerted=True)

    decision = decide_late(push(A, 3), TAG, Neighbours(before, after), {}, POLICY, NOW)

    # The reverter never pushed (its request was settled NOT_REVERTED): B -> A is someone's move, alerted.
    assert decision.move.reverts is False and decision.move.revert_to is None
    assert [(a.previous_digest, a.current_digest) for a in decision.alerts] == [(B, A)]


PENDING = PendingRevert(RevertRequest(TAG, source(2).key), target=A, overwriting=B, status=RevertStatus.PENDING)


def scanned(verdict: Verdict, status: ScanStatus = ScanStatus.COMPLETE) -> ScanState:
    return ScanState(status, datetime(2026, 11, 20, 9, 5, tzinfo=UTC), "ecr-basic", verdict)


PASSED = RevertTarget(scanned(Verdict.PASS), datetime(2026, 11, 20, 9, 0, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (RegistryView(Mutability.MUTABLE, B, True), RevertAction.PUT_BACK),
        (RegistryView(Mutability.IMMUTABLE_WITH_EXCLUSION, B, True), RevertAction.PUT_BACK),
        (RegistryView(Mutability.IMMUTABLE, B, True), (RevertStatus.NOT_REVERTED, "immutable")),
        (RegistryView(Mutability.MUTABLE, A, True), (RevertStatus.REVERTED, "again")),
        (RegistryView(Mutability.MUTABLE, None, True), (RevertStatus.NOT_REVERTED, "deleted")),
        (RegistryView(Mutability.MUTABLE, C, True), (RevertStatus.NOT_REVERTED, "moved again")),
        (RegistryView(Mutability.MUTABLE, B, False), (RevertStatus.NOT_REVERTED, "no longer in the repository")),
    ],
)
def test_what_the_reverter_does_with_what_the_registry_holds(
    view: RegistryView, expected: RevertAction | tuple[RevertStatus, str]
) -> None:
    decided = decide_revert(PENDING, view, PASSED)

    if isinstance(expected, RevertAction):
        assert decided is expected
    else:
        assert isinstance(decided, RevertOutcome)
        assert decided.status is expected[0] and expected[1] in decided.detail


def test_the_alerts_say_the_outcome_under_the_same_ids() -> None:
    (alert,) = current(push(B, 2), pointer(A, 1))[0].alerts
    outcome = RevertOutcome(status=RevertStatus.NOT_REVERTED, detail="the repository's tags are immutable now")

    (said,) = with_outcome((alert,), outcome)

    assert said.alert_id == alert.alert_id and said.revert == outcome
    assert said.summary == alert.summary + " Not reverted: the repository's tags are immutable now."
    assert replace(PENDING, status=RevertStatus.REVERTED).pending is False


BASE = {"LEDGER_TABLE_NAME": "tagwarden-ledger", "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"}
HOME = {"TAGWARDEN_ACCOUNT_ID": "111122223333", "AWS_REGION": "eu-west-1"}


def test_the_push_guard_refuses_revert_without_prefixes_or_queue_at_cold_start() -> None:
    from tagwarden.config import ConfigurationError, PushGuardConfig

    with pytest.raises(ConfigurationError, match="REVERT_REPOSITORY_PREFIXES and REVERT_QUEUE_URL"):
        PushGuardConfig.from_env({**BASE, "REVERT_PROTECTED_TAGS": "true", "REVERT_QUEUE_URL": "https://sqs/q"})
    config = PushGuardConfig.from_env(
        {**BASE, **HOME, "REVERT_PROTECTED_TAGS": "true", "REVERT_REPOSITORY_PREFIXES": " shop/, platform/ ",
         "REVERT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111122223333/requests"}
    )  # fmt: skip
    # Without the stack's account and region nothing could be its own: refused at cold start, not silently off.
    with pytest.raises(ConfigurationError, match="TAGWARDEN_ACCOUNT_ID and AWS_REGION"):
        PushGuardConfig.from_env(
            {**BASE, "REVERT_PROTECTED_TAGS": "true", "REVERT_REPOSITORY_PREFIXES": "shop/", "REVERT_QUEUE_URL": "q"}
        )
    assert config.revert_scope == RevertScope(("shop/", "platform/"), "111122223333", "eu-west-1")
    # Off (the template's default), the push guard needs neither.
    assert PushGuardConfig.from_env({**BASE, "REVERT_PROTECTED_TAGS": "false"}).REVERT_PROTECTED_TAGS is False


def test_the_reverter_needs_its_prefixes() -> None:
    from tagwarden.config import ConfigurationError, TagReverterConfig

    with pytest.raises(ConfigurationError, match="REVERT_REPOSITORY_PREFIXES"):
        TagReverterConfig.from_env({**BASE, "REVERT_REPOSITORY_PREFIXES": ""})
    with pytest.raises(ConfigurationError, match="TAGWARDEN_ACCOUNT_ID and AWS_REGION"):
        TagReverterConfig.from_env({**BASE, "REVERT_REPOSITORY_PREFIXES": "shop/"})
    config = TagReverterConfig.from_env({**BASE, **HOME, "REVERT_REPOSITORY_PREFIXES": "shop/"})
    assert config.REVERT_MAX_ATTEMPTS == 5 and config.revert_scope.covers_registry(IMAGE)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (RevertTarget(), "(push time unknown) never passed a scan: not restored"),
        (RevertTarget(None, datetime(2026, 11, 20, 8, 59, 30, tzinfo=UTC)), "first pushed 2026-11-20 08:59:30Z"),
        (replace(PASSED, scan=scanned(Verdict.FAIL)), "did not pass its scan: not restored"),
        (replace(PASSED, scan=scanned(Verdict.UNDECIDED)), "did not pass its scan"),
        (replace(PASSED, scan=scanned(Verdict.PASS, ScanStatus.FAILED)), "never passed a scan"),
    ],
    ids=["no record", "never scanned", "failing", "undecided", "scan failed"],
)
def test_only_a_target_with_a_passing_scan_is_put_back(target: RevertTarget, expected: str) -> None:
    # Squat then CI: the content before CI's push is whoever pushed the tag first; unscanned, it stays out.
    decided = decide_revert(PENDING, RegistryView(Mutability.MUTABLE, B, True), target)

    assert isinstance(decided, RevertOutcome) and decided.status is RevertStatus.NOT_REVERTED
    assert expected in decided.detail and "sha256:aaaaaaaaaaaa" in decided.detail


def test_only_the_stacks_own_registry_is_in_scope() -> None:
    other_region = TagRef(ImageName("111122223333.dkr.ecr.eu-central-1.amazonaws.com", "shop/api"), "1.4.0")
    other_account = TagRef(ImageName("210987654321.dkr.ecr.eu-west-1.amazonaws.com", "shop/api"), "1.4.0")

    assert SCOPE.covers(TAG, POLICY)
    assert not SCOPE.covers(other_region, POLICY) and not SCOPE.covers(other_account, POLICY)
    # Where the stack's account is not known, nothing is its own.
    assert not RevertScope(("shop/",)).covers(TAG, POLICY)
    move, after = current(push(B, 2, other_region), pointer(A, 1))
    assert (move.revert_requested, after.revert_to) == (False, None)


def test_prefixes_are_string_prefixes() -> None:
    # Documented (README, RevertRepositoryPrefixes): `shop` covers `shopping`; `shop/` is the namespace.
    assert RevertScope(("shop",)).covers_repository("shopping")
    assert not RevertScope(("shop/",)).covers_repository("shopping")
    assert RevertScope(("shop/",)).covers_repository("shop/api")


def test_the_marker_names_its_request_and_is_pending() -> None:
    move, after = current(push(B, 2), pointer(A, 1))

    assert (after.revert_to, after.revert_request, after.revert_settled_at) == (A, move.source.key, None)


def test_a_push_of_the_target_is_the_revert_only_while_pending_or_just_reverted() -> None:
    settled = source(3).event_time
    # Just REVERTED: ECR's event for the PutImage is timed before the outcome was recorded.
    move, after = current(push(A, 3), pointer(B, 2, revert_to=A, settled_at=settled))
    assert (move.reverts, move.alerts, after.revert_to, after.revert_request) == (True, (), None, None)
    # Long after it was settled: anyone's push of that content is an overwrite like any other.
    late_push = push(A, 3)
    later = replace(late_push, source=replace(late_push.source, event_time=settled + REVERT_PUSH_WINDOW * 2))
    move, after = current(later, pointer(B, 2, revert_to=A, settled_at=settled))
    assert move.reverts is False and len(move.alerts) == 1
    # ... and asks for its own revert, to the content before it (the stale marker is gone).
    assert (move.revert_requested, after.revert_to) == (True, B)


def test_a_marker_past_its_window_is_dropped_by_the_next_push() -> None:
    settled = source(3).event_time
    action = push(C, 3)
    action = replace(action, source=replace(action.source, event_time=settled + timedelta(days=3)))
    tag = action.tag_ref
    assert tag is not None

    decision = decide_current(action, tag, pointer(B, 2, revert_to=A, settled_at=settled), {}, POLICY, NOW)

    assert decision.pointer is not None and decision.pointer.revert_to is None
