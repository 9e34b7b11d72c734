"""`tagwarden prepush`: ask the registry where the tag points, decide, and add the ledger's view for ECR.

Read (the registry, through `TagResolver`) -> decide (`domain.prepush`) -> report. Nothing is written:
the check runs in CI with pull rights only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tagwarden.domain.images import ImageReference
from tagwarden.domain.prepush import PrepushDecision, TagLookup, decide_prepush
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import TagRef

if TYPE_CHECKING:
    from tagwarden.ports import TagResolver
    from tagwarden.services.ledger_queries import ImageCheck, LedgerQueries


@dataclass(frozen=True, slots=True)
class PrepushReport:
    """The decision, what the registry said, and (for ECR, with a ledger) what the ledger holds for the tag."""

    tag: TagRef
    lookup: TagLookup
    decision: PrepushDecision
    # The ledger's answer for the tag as `tagwarden check` gives it: where it points there, and its scan.
    ledger: ImageCheck | None = None

    @property
    def ledger_disagrees(self) -> bool:
        """True when the ledger has the tag on other content than the registry: a move it has not recorded."""
        return (
            self.ledger is not None
            and self.ledger.digest is not None
            and self.lookup.digest is not None
            and self.ledger.digest != self.lookup.digest
        )


def check_before_push(
    resolver: TagResolver,
    policy: TagPolicy,
    tag: TagRef,
    pushing: str,
    *,
    strict: bool = False,
    queries: LedgerQueries | None = None,
) -> PrepushReport:
    """Whether pushing the digest `pushing` to `tag` would move it, and whether the policy allows that."""
    lookup = resolver.lookup(tag)
    decision = decide_prepush(policy.classify(tag.tag), lookup, pushing, strict=strict)
    ledger = queries.check(ImageReference(tag.image, tag.tag)) if queries is not None else None
    return PrepushReport(tag, lookup, decision, ledger)
