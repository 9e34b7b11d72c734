"""Before CI pushes a tag: would the push move it, and may it?

The decision is a table of the tag's class (the stack's tag policy), where the tag points in the registry
now, and the digest CI is about to push:

| registry now                   | class                   | verdict   | allowed             |
|--------------------------------|-------------------------|-----------|---------------------|
| no such tag (or no repository) | any                     | ABSENT    | yes                 |
| the digest CI pushes           | any                     | UNCHANGED | yes                 |
| another digest                 | protected               | REFUSED   | no                  |
| another digest                 | ordinary (unclassified) | REFUSED   | no                  |
| another digest                 | mutable                 | MOVES     | yes; no with strict |
| another digest                 | signature               | MOVES     | yes, even strict    |

Unclassified tags are refused like protected ones: a tag nobody declared mutable is one somebody may
deploy by name, and moving it silently is the attack. Signature and referrers tags (cosign's
`sha256-<digest>.sig`, the referrers fallback index) are re-pushed by design each time a signature or
attestation is added to the same subject: refusing them would break signing, and what they name is
derived from a digest, not deployed. `--strict` is about tags people deploy, so it leaves them alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tagwarden.domain.tag_policy import TagClass


class PushVerdict(StrEnum):
    """What the push would do to the tag."""

    ABSENT = "absent"  # the tag does not exist yet: the push creates it
    UNCHANGED = "unchanged"  # the tag already names the pushed digest
    MOVES = "moves"  # the push moves the tag, and the policy allows it
    REFUSED = "refused"  # the push would move the tag, and the policy forbids it


@dataclass(frozen=True, slots=True)
class TagLookup:
    """Where a tag points in the registry now (`digest` None: no such tag)."""

    digest: str | None
    # False when the registry says it does not know the repository (ECR's NAME_UNKNOWN): no tag to overwrite
    # either. None when the tag is absent and the registry did not say: distribution (and most registries
    # built on it) answer MANIFEST_UNKNOWN for a missing tag and a missing repository alike.
    repository_exists: bool | None = True
    media_type: str | None = None
    # True when the registry was asked without credentials (none given or found): a registry that hides
    # private repositories from anonymous clients answers 404 for them, which reads as "absent".
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class PrepushDecision:
    """The answer for one tag: what the push would do and whether it may."""

    tag_class: TagClass
    current: str | None
    pushing: str
    verdict: PushVerdict
    reason: str

    @property
    def allowed(self) -> bool:
        """True when CI may push (exit 0)."""
        return self.verdict is not PushVerdict.REFUSED


def decide_prepush(tag_class: TagClass, lookup: TagLookup, pushing: str, *, strict: bool) -> PrepushDecision:
    """Whether pushing `pushing` to `tag` is allowed, per the table in the module docstring."""
    current = lookup.digest
    if current is None:
        missing = "repository" if lookup.repository_exists is False else "tag"
        where = f"the {missing} does not exist yet"
        return PrepushDecision(tag_class, None, pushing, PushVerdict.ABSENT, f"{where}: the push creates it")
    if current == pushing:
        return PrepushDecision(
            tag_class, current, pushing, PushVerdict.UNCHANGED, f"the tag already names {pushing}: nothing moves"
        )
    moving = f"the push would move the {tag_class.value} tag from {current} to {pushing}"
    if tag_class is TagClass.SIGNATURE:
        return PrepushDecision(
            tag_class, current, pushing, PushVerdict.MOVES, f"{moving}; signature tags move by design"
        )
    if tag_class is TagClass.MUTABLE and not strict:
        return PrepushDecision(
            tag_class, current, pushing, PushVerdict.MOVES, f"{moving}; mutable tags may move (not --strict)"
        )
    why = {
        TagClass.PROTECTED: "protected tags never move",
        TagClass.ORDINARY: "tags the policy does not declare mutable never move",
        TagClass.MUTABLE: "--strict refuses moving mutable tags too",
    }[tag_class]
    return PrepushDecision(tag_class, current, pushing, PushVerdict.REFUSED, f"{moving}; {why}")
