"""Why the ledger says an image's content may not be deployed.

The outcomes every deploy gate reaches from the ledger: the `tagwarden check` command (services.ledger_queries)
and the admission webhook (domain.admission) refuse an image for these reasons and no others of the ledger's.
The values are the check command's words (its JSON `refusal`); a caller that words one differently keeps its
own text next to its use.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    """Why an image may not be deployed, by what the ledger holds for it."""

    UNKNOWN_TAG = "unknown tag"
    UNKNOWN_DIGEST = "unknown digest"
    TAG_DELETED = "tag deleted"
    TAG_MOVED = "tag moved since its last scan"
    UNSCANNED = "unscanned"
    SCAN_FAILED = "failed scan"
    FAILING_VERDICT = "failing verdict"
    UNDECIDED_VERDICT = "undecided verdict"
