"""Who pushed: CloudTrail identities read from records, and matched to history entries by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tagwarden.domain.alerts import Actor
from tagwarden.domain.identity import (
    CORRELATION_WINDOW,
    ActorReport,
    HistoryCandidate,
    actor_label,
    matching_entry,
    within_window,
)
from tagwarden.domain.images import ImageName
from tagwarden.domain.tags import TagAction, TagRef
from tagwarden.events.cloudtrail import UserIdentity

AT = datetime(2026, 11, 20, 10, 2, 2, tzinfo=UTC)
TAG = TagRef(ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api"), "latest")
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def actor(at: datetime = AT, principal: str | None = "ci-release/run-1", ip: str | None = "198.51.100.24") -> Actor:
    return Actor(
        arn=None,
        identity_type="AssumedRole",
        principal=principal,
        account="111122223333",
        source_ip=ip,
        user_agent=None,
        trail_event_id="trail-1",
        trail_event_time=at,
    )


def candidate(seconds: int, digest: str = B, action: TagAction = TagAction.PUSH) -> HistoryCandidate:
    return HistoryCandidate(f"k{seconds}", action, digest, AT + timedelta(seconds=seconds))


def test_the_nearest_entry_of_the_same_action_and_digest_within_the_window_is_named() -> None:
    report = ActorReport(TagAction.PUSH, TAG, B, actor())
    candidates = [candidate(-90), candidate(1), candidate(3, digest=A), candidate(0, action=TagAction.DELETE)]
    assert matching_entry(report, candidates) == candidate(1)


def test_nothing_outside_the_window_is_named() -> None:
    report = ActorReport(TagAction.PUSH, TAG, B, actor())
    outside = int(CORRELATION_WINDOW.total_seconds()) + 1
    assert matching_entry(report, [candidate(outside), candidate(-outside)]) is None
    assert within_window(actor(), AT + CORRELATION_WINDOW)
    assert not within_window(None, AT)


@pytest.mark.parametrize(
    ("identity", "principal"),
    [
        ({"type": "IAMUser", "userName": "Mary_Major", "arn": "arn:aws:iam::1:user/Mary_Major"}, "Mary_Major"),
        (
            {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/ci-release/gha-run-4711"},
            "ci-release/gha-run-4711",
        ),
        ({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "principalId": "111122223333"}, "111122223333"),
        ({"type": "AWSService", "invokedBy": "ecr.amazonaws.com"}, "ecr.amazonaws.com"),
        (
            {
                "type": "FederatedUser",
                "principalId": "111122223333:alice",
                "sessionContext": {"sessionIssuer": {"type": "IAMUser", "userName": "federator"}},
            },
            "federator",
        ),
    ],
)
def test_principal_is_a_name_people_recognise(identity: dict[str, object], principal: str) -> None:
    assert UserIdentity.model_validate(identity).principal == principal


def test_label() -> None:
    assert actor_label(None) == "not yet known"
    assert actor_label(actor()) == "ci-release/run-1 from 198.51.100.24"
    assert actor_label(actor(principal=None, ip=None)) == "unknown identity"
