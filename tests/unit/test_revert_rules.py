"""Opt-in revert as plain rules: which overwrites ask for one, how the revert's own push is recognised, and
what the reverter does with what the registry holds (domain.revert's table)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

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
    decide_revert,
    request_revert,
    with_outcome,
)
from tagwarden.domain.rules import Neighbours, decide_current, decide_late
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef

IMAGE = ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api")
TAG = TagRef(IMAGE, "1.4.0")
A, B, C = ("sha256:" + c * 64 for c in "abc")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = TagPolicy()
SCOPE = RevertScope(("shop/",))


def source(minute: int) -> SourceEvent:
    return SourceEvent(f"evt-{minute}", datetime(2026, 11, 20, 10, minute, tzinfo=UTC), "111122223333")


def push(digest: str, minute: int, tag: TagRef = TAG) -> ImageAction:
    return ImageAction(TagAction.PUSH, tag.image, digest, tag.tag, source(minute))


def pointer(digest: str | None, minute: int, revert_to: str | None = None, last: str | None = None) -> TagPointer:
    return TagPointer(digest, last or digest or A, source(minute).key, 3, revert_to=revert_to)


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


PENDING = PendingRevert(RevertRequest(TAG, source(2).key), target=A, overwriting=B, status=RevertStatus.PENDING)


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
    decided = decide_revert(PENDING, view)

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


def test_the_push_guard_refuses_revert_without_prefixes_or_queue_at_cold_start() -> None:
    from tagwarden.config import ConfigurationError, PushGuardConfig

    with pytest.raises(ConfigurationError, match="REVERT_REPOSITORY_PREFIXES and REVERT_QUEUE_URL"):
        PushGuardConfig.from_env({**BASE, "REVERT_PROTECTED_TAGS": "true", "REVERT_QUEUE_URL": "https://sqs/q"})
    config = PushGuardConfig.from_env(
        {**BASE, "REVERT_PROTECTED_TAGS": "true", "REVERT_REPOSITORY_PREFIXES": " shop/, platform/ ",
         "REVERT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111122223333/requests"}
    )  # fmt: skip
    assert config.revert_scope == RevertScope(("shop/", "platform/"))
    # Off (the template's default), the push guard needs neither.
    assert PushGuardConfig.from_env({**BASE, "REVERT_PROTECTED_TAGS": "false"}).REVERT_PROTECTED_TAGS is False


def test_the_reverter_needs_its_prefixes() -> None:
    from tagwarden.config import ConfigurationError, TagReverterConfig

    with pytest.raises(ConfigurationError, match="REVERT_REPOSITORY_PREFIXES"):
        TagReverterConfig.from_env({**BASE, "REVERT_REPOSITORY_PREFIXES": ""})
    assert TagReverterConfig.from_env({**BASE, "REVERT_REPOSITORY_PREFIXES": "shop/"}).REVERT_MAX_ATTEMPTS == 5
