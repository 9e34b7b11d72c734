"""Tag-protection posture as a table: which settings let protected tags move, and what closes each gap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tagwarden.domain.alerts import Actor
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tag_protection import (
    ECR_FILTER,
    KnownSetting,
    ProtectionSetting,
    SettingsChange,
    SettingsSubject,
    TagMutability,
    closing_command,
    closing_setting,
    decide_settings,
    exposure,
    filter_covers,
    globs_overlap,
    protection_alert,
)

POLICY = TagPolicy()  # protected: v[0-9]*.[0-9]*, [0-9]*.[0-9]*; mutable: latest
M, IMM = TagMutability.MUTABLE, TagMutability.IMMUTABLE
IWE, MWE = TagMutability.IMMUTABLE_WITH_EXCLUSION, TagMutability.MUTABLE_WITH_EXCLUSION


@pytest.mark.parametrize(
    ("pattern", "ecr_filter", "overlap"),
    [
        ("v[0-9]*.[0-9]*", "v*", True),
        ("v[0-9]*.[0-9]*", "latest", False),
        ("v[0-9]*.[0-9]*", "*", True),
        ("v[0-9]*.[0-9]*", "v1.2.3", True),
        ("v[0-9]*.[0-9]*", "va*", False),  # the character after v must be a digit
        ("[0-9]*.[0-9]*", "*-rc", True),  # 1.2-rc
        ("[0-9]*.[0-9]*", "dev-*", False),
        ("release-?", "release-*", True),
        ("[!0-9]*", "1*", False),
        # ECR does not document whether filters match case-sensitively: overlap takes the reading that exposes.
        ("v[0-9]*.[0-9]*", "V*", True),
        ("latest", "LATEST", True),
        ("release-?", "RELEASE-1", True),
        ("v[0-9]*.[0-9]*", "VA*", False),
    ],
)
def test_overlap_of_a_protected_glob_and_an_ecr_wildcard(pattern: str, ecr_filter: str, overlap: bool) -> None:
    assert globs_overlap(pattern, ecr_filter) is overlap


@pytest.mark.parametrize(
    ("ecr_filter", "pattern", "covers"),
    [
        ("*", "v[0-9]*.[0-9]*", True),
        ("v*", "v[0-9]*.[0-9]*", True),
        ("v1*", "v[0-9]*.[0-9]*", False),  # v2.0 is not covered
        ("1.4.0", "1.4.0", True),
        ("latest", "v[0-9]*.[0-9]*", False),
        ("*.*", "v[0-9]*.[0-9]*", False),  # true, but not provable by the conservative rule: counted as a gap
        ("V*", "v[0-9]*.[0-9]*", False),  # cover respects case: were ECR case-sensitive, V* would not cover
    ],
)
def test_cover_is_conservative(ecr_filter: str, pattern: str, covers: bool) -> None:
    assert filter_covers(ecr_filter, pattern) is covers


@pytest.mark.parametrize(
    ("setting", "movable"),
    [
        (ProtectionSetting(M), True),
        (ProtectionSetting(IMM), False),
        (ProtectionSetting(IWE, ("latest", "dev-*")), False),
        (ProtectionSetting(IWE, ("latest", "v*")), True),
        (ProtectionSetting(IWE, ("latest", "V*")), True),  # V* may keep v1.2 mutable (case not documented)
        (ProtectionSetting(MWE, ("v*",)), True),  # [0-9]*.[0-9]* not covered
        (ProtectionSetting(MWE, ("v*", "1*", "2*")), True),  # a union is never counted as covering
        (ProtectionSetting(MWE, ("*",)), False),
    ],
)
def test_exposure(setting: ProtectionSetting, movable: bool) -> None:
    assert exposure(setting, POLICY).movable is movable


def test_no_protected_patterns_means_nothing_to_expose() -> None:
    assert not exposure(ProtectionSetting(M), TagPolicy(protected=())).movable


@pytest.mark.parametrize(
    ("setting", "closing"),
    [
        (ProtectionSetting(M), ProtectionSetting(IWE, ("latest",))),  # latest keeps moving
        (ProtectionSetting(IWE, ("latest", "v*", "dev-*")), ProtectionSetting(IWE, ("latest", "dev-*"))),
        (ProtectionSetting(IWE, ("*",)), ProtectionSetting(IMM)),
        (ProtectionSetting(IMM), None),
    ],
)
def test_the_setting_that_closes_a_gap(setting: ProtectionSetting, closing: ProtectionSetting | None) -> None:
    assert closing_setting(setting, POLICY) == closing
    if closing is not None:
        assert not exposure(closing, POLICY).movable
        assert len(closing.filters) <= 5 and all(ECR_FILTER.fullmatch(f) for f in closing.filters)


def test_a_mutable_pattern_ecr_cannot_express_is_not_proposed() -> None:
    policy = TagPolicy(mutable=("latest", "nightly-[0-9]*", "edge"))
    assert closing_setting(ProtectionSetting(M), policy) == ProtectionSetting(IWE, ("latest", "edge"))


def test_at_most_five_exclusion_filters_are_proposed() -> None:
    policy = TagPolicy(mutable=tuple(f"dev{n}-*" for n in range(8)))
    closing = closing_setting(ProtectionSetting(M), policy)
    assert closing is not None and len(closing.filters) == 5


def test_the_command_is_shell_quoted() -> None:
    command = closing_command("shop/api", "111122223333", "eu-west-1", ProtectionSetting(IWE, ("latest", "dev-*")))
    assert command == (
        "aws ecr put-image-tag-mutability --repository-name shop/api --registry-id 111122223333 --region eu-west-1 "
        "--image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters "
        "filterType=WILDCARD,filter=latest 'filterType=WILDCARD,filter=dev-*'"
    )


def change(setting: ProtectionSetting, *, created: bool = False) -> SettingsChange:
    at = datetime(2026, 11, 20, 9, 57, tzinfo=UTC)
    actor = Actor(
        arn="arn:aws:iam::111122223333:user/Mary_Major",
        identity_type="IAMUser",
        principal="Mary_Major",
        account="111122223333",
        source_ip="203.0.113.12",
        user_agent="aws-cli/2",
        trail_event_id="trail-1",
        trail_event_time=at,
    )
    return SettingsChange(
        SettingsSubject.REPOSITORY,
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com",
        "shop/api",
        setting,
        created,
        "CreateRepository" if created else "PutImageTagMutability",
        SourceEvent("trail-1", at, "111122223333", "eu-west-1"),
        actor,
    )


@pytest.mark.parametrize(
    ("previous", "after", "alerted", "wording"),
    [
        (ProtectionSetting(IMM), ProtectionSetting(M), True, "it was IMMUTABLE"),
        (None, ProtectionSetting(M), True, "previous setting unknown"),
        (ProtectionSetting(M), ProtectionSetting(M), False, None),  # already open: not a weakening
        (ProtectionSetting(M), ProtectionSetting(IMM), False, None),  # a strengthening
        (None, ProtectionSetting(IWE, ("latest",)), False, None),
    ],
)
def test_a_change_weakens_when_protected_tags_could_not_move_before_and_can_after(
    previous: ProtectionSetting | None, after: ProtectionSetting, alerted: bool, wording: str | None
) -> None:
    alert = protection_alert(change(after), previous, POLICY, datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert (alert is not None) is alerted
    if alert is not None:
        assert wording is not None and wording in alert.summary
        assert "Changed by Mary_Major" in alert.summary
        assert alert.actor is not None and alert.actor.trail_event_id == "trail-1"


def test_a_repository_created_mutable_is_a_weakening() -> None:
    alert = protection_alert(change(ProtectionSetting(M), created=True), None, POLICY, datetime.now(UTC))
    assert alert is not None and "it was created" in alert.summary


# --- same-second changes (CloudTrail's one-second times) ---------------------------------------------


def known(setting: ProtectionSetting, time: str, event_id: str, order_unknown: bool = False) -> KnownSetting:
    return KnownSetting(setting, f"{time}.000000Z#{event_id}", order_unknown)


AT = "2026-11-20T09:57:00"  # change()'s time


@pytest.mark.parametrize(
    ("recorded", "after", "record", "order_unknown", "alert_says"),
    [
        # A recorded IMMUTABLE in the same second, this change opens: recorded over it, order unknown, alerted.
        (known(ProtectionSetting(IMM), AT, "zzzz"), ProtectionSetting(M), True, True, "order unknown"),
        # A recorded MUTABLE in the same second, this change closes: the open one stays, alerted all the same.
        (known(ProtectionSetting(M), AT, "0000"), ProtectionSetting(IMM), False, True, "order unknown"),
        # Same second, same exposure: ordered by id as before, nothing to say.
        (known(ProtectionSetting(IMM), AT, "0000"), ProtectionSetting(IWE, ("latest",)), True, False, None),
        # An earlier second: an ordinary weakening.
        (known(ProtectionSetting(IMM), "2026-11-20T09:56:59", "zzzz"), ProtectionSetting(M), True, False, "it was"),
        # The closing one of a pair already alerted, delivered again: the open setting stays, no new alert.
        (known(ProtectionSetting(M), AT, "0000", True), ProtectionSetting(IMM), False, True, None),
        # A same-second change that agrees with an unordered setting keeps the order unknown.
        (known(ProtectionSetting(M), AT, "0000", True), ProtectionSetting(M), True, True, "unknown"),
        # After an order-unknown pair the previous setting is unknown.
        (known(ProtectionSetting(M), "2026-11-20T09:00:00", "a", True), ProtectionSetting(M), True, False, "unknown"),
    ],
)
def test_same_second_changes_that_disagree_are_never_silently_ordered(
    recorded: KnownSetting, after: ProtectionSetting, record: bool, order_unknown: bool, alert_says: str | None
) -> None:
    decision = decide_settings(change(after), recorded, POLICY, datetime(2026, 11, 20, 10, tzinfo=UTC))

    assert (decision.record, decision.order_unknown) == (record, order_unknown)
    assert (decision.alert is not None) is (alert_says is not None)
    if decision.alert is not None:
        assert alert_says is not None and alert_says in decision.alert.summary
