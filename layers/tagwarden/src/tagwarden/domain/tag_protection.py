"""Tag-protection posture: can a repository's tag mutability settings let a protected tag be overwritten?

ECR's settings (`imageTagMutability`, `imageTagMutabilityExclusionFilters`):

| mutability                 | the filters name           | a protected tag can be overwritten when... |
|----------------------------|----------------------------|------|
| `MUTABLE`                  | (none)                     | always |
| `IMMUTABLE`                | (none)                     | never (delete, then push, still can) |
| `IMMUTABLE_WITH_EXCLUSION` | tags that stay mutable     | a filter can match a tag that a protected pattern matches |
| `MUTABLE_WITH_EXCLUSION`   | tags that become immutable | a protected pattern is not covered whole by one filter |

ECR filters are wildcards (`*` for any run of characters, at most 5 filters of `[0-9a-zA-Z._*-]`, 1 to 128
characters); protected patterns are shell globs (`*`, `?`, `[...]`). Both questions are answered
conservatively, on the safe side (saying "can move" when unsure):
- *case*: ECR's documentation does not say whether a filter matches tags case-sensitively (the API reference,
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html, gives
  only the pattern `^[0-9a-zA-Z._*-]{1,128}$` and "the filter value used to match image tags"; no ECR page we
  found, user guide or CloudFormation reference, states the rule), while tags themselves are case-sensitive.
  So each question takes the reading that exposes more: overlap ignores case (`LATEST*` keeps `latest`
  mutable, were ECR to fold case), cover respects it (`V*` is not counted as covering `v*`).
- *overlap* (a filter that keeps some tags mutable): the two patterns are read as automata over the tag
  alphabet and intersected; any common string counts, even one ECR would refuse as a tag (a first `.`).
- *cover* (a filter that makes some tags immutable): a protected pattern counts as covered only when one
  filter is `*`, or equals the pattern as a literal tag, or is a literal prefix then `*` that the pattern's
  own literal prefix begins with. Unions of several filters are never counted as covering.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from tagwarden.domain.alerts import RUNBOOKS, Actor, Alert, AlertType, derive_alert_id
from tagwarden.domain.severity import Severity
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy

MAX_EXCLUSION_FILTERS = 5
# ECR's own syntax for an exclusion filter (API reference, ImageTagMutabilityExclusionFilter).
ECR_FILTER = re.compile(r"[0-9a-zA-Z._*-]{1,128}")
# What a tag may hold (the distribution grammar): the alphabet the automata below run over.
_TAG_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# An alert about settings is HIGH: nothing moved yet, but the next push of a protected tag may.
PROTECTION_WEAKENED_SEVERITY = Severity.HIGH


class TagMutability(StrEnum):
    """ECR's `imageTagMutability` values."""

    MUTABLE = "MUTABLE"
    IMMUTABLE = "IMMUTABLE"
    IMMUTABLE_WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"
    MUTABLE_WITH_EXCLUSION = "MUTABLE_WITH_EXCLUSION"


@dataclass(frozen=True, slots=True)
class ProtectionSetting:
    """A repository's (or creation template's) tag mutability and its exclusion filters (wildcards)."""

    mutability: TagMutability
    filters: tuple[str, ...] = ()

    def describe(self) -> str:
        """`IMMUTABLE_WITH_EXCLUSION (latest, dev-*)` or `MUTABLE`."""
        return f"{self.mutability.value} ({', '.join(self.filters)})" if self.filters else self.mutability.value


@dataclass(frozen=True, slots=True)
class Exposure:
    """Whether protected tags can be overwritten under a setting, and why."""

    movable: bool
    # The protected patterns some of whose tags can move.
    exposed_patterns: tuple[str, ...] = ()
    # The exclusion filters that let them move (IMMUTABLE_WITH_EXCLUSION only).
    opening_filters: tuple[str, ...] = ()
    reason: str = ""


# --- glob automata -------------------------------------------------------------------------------------

_Token = tuple[Literal["star"], frozenset[str]] | tuple[Literal["one"], frozenset[str]]


def _tokens(pattern: str, *, glob: bool, fold_case: bool = False) -> list[_Token]:
    """A pattern as a sequence of `star` (any run) and `one` (one character of a set) tokens.

    `glob`: fnmatch's syntax (`?`, `[...]`, `[!...]`); else ECR's, where only `*` is special.
    `fold_case`: a literal letter stands for itself in either case.
    """
    tokens: list[_Token] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "*":
            if not tokens or tokens[-1][0] != "star":
                tokens.append(("star", _TAG_ALPHABET))
            position += 1
        elif glob and char == "?":
            tokens.append(("one", _TAG_ALPHABET))
            position += 1
        elif glob and char == "[" and (end := pattern.find("]", position + 2)) != -1:
            body = pattern[position + 1 : end]
            negate = body.startswith("!")
            chars = _class_chars(body[1:] if negate else body)
            tokens.append(("one", _TAG_ALPHABET - chars if negate else chars & _TAG_ALPHABET))
            position = end + 1
        elif fold_case:
            tokens.append(("one", frozenset((char.lower(), char.upper()))))
            position += 1
        else:
            tokens.append(("one", frozenset(char)))
            position += 1
    return tokens


def _class_chars(body: str) -> frozenset[str]:
    """The characters of a bracket expression's body (`0-9a-f_`)."""
    chars: set[str] = set()
    position = 0
    while position < len(body):
        if position + 2 < len(body) and body[position + 1] == "-":
            chars.update(chr(code) for code in range(ord(body[position]), ord(body[position + 2]) + 1))
            position += 3
        else:
            chars.add(body[position])
            position += 1
    return frozenset(chars)


def globs_overlap(shell_pattern: str, ecr_filter: str) -> bool:
    """Whether some tag matches both a shell glob (a protected pattern) and an ECR wildcard filter.

    A search over pairs of positions in the two patterns (the product of their automata). The filter's
    letters match either case (see the module docstring: the safe reading while ECR does not document it).
    """
    left, right = _tokens(shell_pattern, glob=True), _tokens(ecr_filter, glob=False, fold_case=True)
    seen: set[tuple[int, int]] = set()
    pending = [(0, 0)]
    while pending:
        state = pending.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == len(left) and j == len(right):
            return True
        # A star may match nothing.
        if i < len(left) and left[i][0] == "star":
            pending.append((i + 1, j))
        if j < len(right) and right[j][0] == "star":
            pending.append((i, j + 1))
        if i < len(left) and j < len(right) and left[i][1] & right[j][1]:
            # Both consume one common character; a star stays where it is.
            pending.append((i if left[i][0] == "star" else i + 1, j if right[j][0] == "star" else j + 1))
    return False


def _literal_prefix(pattern: str) -> str:
    """The characters of a shell glob before its first special character."""
    match = re.match(r"[^*?\[]*", pattern)
    return match.group(0) if match else ""


def filter_covers(ecr_filter: str, shell_pattern: str) -> bool:
    """Whether every tag the protected pattern matches surely matches the filter (see the module docstring)."""
    if ecr_filter == "*":
        return True
    if "*" not in ecr_filter:
        return _literal_prefix(shell_pattern) == shell_pattern == ecr_filter
    head, _, tail = ecr_filter.partition("*")
    return tail == "" and "*" not in head and _literal_prefix(shell_pattern).startswith(head)


# --- posture -------------------------------------------------------------------------------------------


def exposure(setting: ProtectionSetting, policy: TagPolicy) -> Exposure:
    """Whether tags matching the policy's protected patterns can be overwritten under `setting`."""
    protected = policy.protected
    if not protected:
        return Exposure(False, reason="no protected tag patterns")
    mutability = setting.mutability
    if mutability is TagMutability.MUTABLE:
        return Exposure(True, protected, (), "tags are MUTABLE: any protected tag can be overwritten")
    if mutability is TagMutability.IMMUTABLE:
        return Exposure(False, reason="tags are IMMUTABLE")
    if mutability is TagMutability.IMMUTABLE_WITH_EXCLUSION:
        opening = tuple(f for f in setting.filters if any(globs_overlap(p, f) for p in protected))
        exposed = tuple(p for p in protected if any(globs_overlap(p, f) for f in setting.filters))
        if not opening:
            return Exposure(False, reason="no exclusion filter matches a protected tag")
        reason = (
            f"exclusion filters {', '.join(opening)} keep mutable the tags matching protected patterns "
            f"{', '.join(exposed)}"
        )
        return Exposure(True, exposed, opening, reason)
    uncovered = tuple(p for p in protected if not any(filter_covers(f, p) for f in setting.filters))
    if not uncovered:
        return Exposure(False, reason="every protected pattern is covered by an immutable-tag filter")
    return Exposure(
        True,
        uncovered,
        (),
        f"tags are MUTABLE except those the filters name, which do not cover protected patterns {', '.join(uncovered)}",
    )


def closing_setting(setting: ProtectionSetting, policy: TagPolicy) -> ProtectionSetting | None:
    """The setting that closes a gap within ECR's limits (None: no gap).

    IMMUTABLE_WITH_EXCLUSION keeps the filters that match no protected tag; from MUTABLE (with or without
    filters) the mutable tag patterns that ECR can express and that match no protected tag become the
    exclusions (so `latest` keeps moving), at most 5; with none left, IMMUTABLE.
    """
    if not exposure(setting, policy).movable:
        return None
    if setting.mutability is TagMutability.IMMUTABLE_WITH_EXCLUSION:
        candidates: Sequence[str] = setting.filters
    else:
        candidates = [p for p in policy.mutable if ECR_FILTER.fullmatch(p)]
    kept = tuple(dict.fromkeys(f for f in candidates if not any(globs_overlap(p, f) for p in policy.protected)))[
        :MAX_EXCLUSION_FILTERS
    ]
    if not kept:
        return ProtectionSetting(TagMutability.IMMUTABLE)
    return ProtectionSetting(TagMutability.IMMUTABLE_WITH_EXCLUSION, kept)


def closing_command(repository: str, registry_id: str | None, region: str | None, setting: ProtectionSetting) -> str:
    """The exact `aws ecr put-image-tag-mutability` command that applies `setting` (shell-quoted)."""
    parts = ["aws", "ecr", "put-image-tag-mutability", "--repository-name", repository]
    if registry_id:
        parts += ["--registry-id", registry_id]
    if region:
        parts += ["--region", region]
    parts += ["--image-tag-mutability", setting.mutability.value]
    if setting.filters:
        parts.append("--image-tag-mutability-exclusion-filters")
        parts += [f"filterType=WILDCARD,filter={f}" for f in setting.filters]
    return shlex.join(parts)


# --- changes and their alert ---------------------------------------------------------------------------


class SettingsSubject(StrEnum):
    """What a settings change applies to."""

    REPOSITORY = "repository"
    # A repository creation template: its settings apply to repositories ECR creates under its prefix.
    CREATION_TEMPLATE = "creation template"


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A successful API call that set a repository's or creation template's tag mutability (CloudTrail)."""

    subject: SettingsSubject
    registry: str
    # The repository name, or the creation template's prefix (`ROOT` for every repository).
    name: str
    setting: ProtectionSetting
    # Whether the call created the subject (nothing protected it before) or changed an existing one.
    created: bool
    operation: str
    source: SourceEvent
    actor: Actor
    # The call deleted the subject (a creation template): `setting` is then what applies without it, and
    # `replaced` the deleted template's own setting when ECR's answer states it.
    deleted: bool = False
    replaced: ProtectionSetting | None = None


@dataclass(frozen=True, slots=True)
class KnownSetting:
    """The setting the ledger holds for a subject, from the CloudTrail event at `event_key`."""

    setting: ProtectionSetting
    # The position in time of the CloudTrail event that set it (`SourceEvent.key`).
    event_key: str
    # Another change in the same second disagreed on whether protected tags can move: which came last is
    # unknown, so this (the less protective of the two) is not a known previous setting.
    order_unknown: bool = False
    # Who set it (for an alert about a same-second change that undid it).
    actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class SettingsDecision:
    """What to do with one settings change: record its setting or not, and the alert it raises."""

    record: bool
    # Whether the ledger's setting after this change cannot be ordered against a same-second change.
    order_unknown: bool
    alert: Alert | None
    # The change is older than the recorded setting (judged, not recorded).
    late: bool = False


def _second(event_key: str) -> str:
    """The whole second an ordering key starts with (CloudTrail's `eventTime` resolution)."""
    return event_key[:19]


def decide_settings(
    change: SettingsChange, recorded: KnownSetting | None, policy: TagPolicy, detected_at: datetime
) -> SettingsDecision:
    """Judge a change against the recorded setting.

    CloudTrail's `eventTime` has one-second resolution, so two changes in the same second cannot be ordered
    (their event ids, which break ties elsewhere, are random). When such a pair disagrees on whether protected
    tags can move, the ledger keeps the less protective one, marks its order unknown (the next change is
    judged with the previous setting unknown), and the change alerts: either may be the one in force.
    """
    if recorded is None:
        return SettingsDecision(True, False, protection_alert(change, change.replaced, policy, detected_at))
    same_second = _second(recorded.event_key) == change.source.second
    if same_second and exposure(recorded.setting, policy).movable != exposure(change.setting, policy).movable:
        if recorded.order_unknown:
            # The recorded setting is the open one of a pair already alerted (this may be the other one again,
            # delivered twice): nothing new to say, and the open setting stays.
            return SettingsDecision(False, True, None)
        opens = exposure(change.setting, policy).movable
        return SettingsDecision(opens, True, same_second_alert(change, recorded, policy, detected_at))
    newer = recorded.event_key < change.source.key
    # The setting before this event: the recorded one if it is older and known; unknown for a late event.
    known = recorded.setting if newer and not recorded.order_unknown else None
    previous = change.replaced or known
    alert = protection_alert(change, previous, policy, detected_at)
    # A change that agrees with an unordered setting of its own second leaves the order as unknown as it was.
    order_unknown = recorded.order_unknown if same_second or not newer else False
    return SettingsDecision(record=newer, order_unknown=order_unknown, alert=alert, late=not newer)


def weakened(previous: ProtectionSetting | None, change: SettingsChange, policy: TagPolicy) -> bool | None:
    """True when the change lets protected tags move that could not before; None when the previous setting is
    unknown (a change to a subject the ledger has no setting of, or a late event): then a setting that lets
    protected tags move counts as weakening."""
    if not exposure(change.setting, policy).movable:
        return False
    if change.created:
        return True
    if previous is None:
        return None
    return not exposure(previous, policy).movable


def protection_alert_id(change: SettingsChange) -> str:
    """One alert per CloudTrail event (duplicate deliveries of it share the id)."""
    return derive_alert_id(
        AlertType.TAG_PROTECTION_WEAKENED, change.subject.value, change.registry, change.name, change.source.event_id
    )


# How a creation template's alert begins (`protection_alert`), which tells it from a repository's.
CREATION_TEMPLATE_SUMMARY = "Repository creation template "


def created_by_template(alert: Alert) -> bool:
    """Whether a TAG_PROTECTION_WEAKENED alert is about a repository creation template (its `repository` is the
    template's prefix) rather than a repository."""
    return alert.type is AlertType.TAG_PROTECTION_WEAKENED and alert.summary.startswith(CREATION_TEMPLATE_SUMMARY)


def protection_alert(
    change: SettingsChange, previous: ProtectionSetting | None, policy: TagPolicy, detected_at: datetime
) -> Alert | None:
    """TAG_PROTECTION_WEAKENED when the change lets protected tags be overwritten that could not be before."""
    verdict = weakened(previous, change, policy)
    if verdict is False:
        return None
    exposed = exposure(change.setting, policy)
    who = change.actor.principal or change.actor.arn or "an unknown identity"
    what = (
        f"Repository {change.name}"
        if change.subject is SettingsSubject.REPOSITORY
        else f"{CREATION_TEMPLATE_SUMMARY}{change.name} (applies to repositories ECR creates under that prefix)"
    )
    if change.created:
        before = "it was created"
    elif verdict is None:
        before = "previous setting unknown"
    else:
        assert previous is not None
        before = f"it was {previous.describe()}"
    if change.deleted:
        summary = (
            f"{what} in {change.registry} was deleted ({before}): repositories ECR creates under that prefix now "
            f"get a broader template's settings, or ECR's default {change.setting.describe()}; {exposed.reason}. "
            f"Deleted by {who}."
        )
    else:
        summary = (
            f"{what} in {change.registry} now lets protected tags be overwritten: {change.operation} set "
            f"{change.setting.describe()} ({before}); {exposed.reason}. Changed by {who}."
        )
    return _protection_alert(change, summary, change.actor, detected_at)


def same_second_alert(change: SettingsChange, other: KnownSetting, policy: TagPolicy, detected_at: datetime) -> Alert:
    """TAG_PROTECTION_WEAKENED for two changes in one second that disagree: either may be in force, and the
    one that lets protected tags move is named (with who made it)."""
    change_opens = exposure(change.setting, policy).movable
    opening = change.setting if change_opens else other.setting
    actor = change.actor if change_opens else other.actor
    who = (actor.principal or actor.arn) if actor is not None else None
    what = (
        f"Repository {change.name}"
        if change.subject is SettingsSubject.REPOSITORY
        else f"Repository creation template {change.name}"
    )
    summary = (
        f"{what} in {change.registry} may let protected tags be overwritten: {change.operation} set "
        f"{change.setting.describe()} in the same second as another change that set {other.setting.describe()} "
        f"(order unknown within the same second: CloudTrail times have one-second resolution). If "
        f"{opening.describe()} came last, {exposure(opening, policy).reason}. It was set by "
        f"{who or 'an unknown identity'}. Check the setting in force (`tagwarden posture`)."
    )
    return _protection_alert(change, summary, actor, detected_at)


def _protection_alert(change: SettingsChange, summary: str, actor: Actor | None, detected_at: datetime) -> Alert:
    return Alert(
        alert_id=protection_alert_id(change),
        type=AlertType.TAG_PROTECTION_WEAKENED,
        severity=PROTECTION_WEAKENED_SEVERITY,
        summary=summary,
        detected_at=detected_at,
        event_time=change.source.event_time,
        account=change.source.account,
        region=change.source.region,
        registry=change.registry,
        repository=change.name,
        tag=None,
        evidence=(change.source.event_id,),
        runbook=RUNBOOKS[AlertType.TAG_PROTECTION_WEAKENED],
        actor=actor,
    )
