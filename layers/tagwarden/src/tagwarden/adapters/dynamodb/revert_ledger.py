"""The reverter's ledger: revert requests recorded on tag history entries, read and settled once.

The push guard writes a request with the overwrite's entry (`items.revert_values`: `revert_status` PENDING,
`revert_target`), in the same transaction as the move. The reverter settles it with one conditional update:
status, the reason, and the entry's alerts rewritten to say the outcome (their delivery is the outbox's).
Then it releases the pointer's marker (`TagPointer.revert_to`), if the marker is still this request's:
removed when NOT_REVERTED, stamped with the time when REVERTED (the revert's own push event may still come).
A separate update, not a transaction: the marker may be another request's by then, which must not undo the
settlement; a crash in between is mended by the request's next delivery (`release_marker` again).
"""

from __future__ import annotations

from dataclasses import replace

from tagwarden.adapters.dynamodb.items import optional_scan, stored_pending_revert
from tagwarden.adapters.dynamodb.keys import POINTER_SK, digest_key, key, move_sk, tag_pk
from tagwarden.adapters.dynamodb.outbox import recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.clock import iso, parse_iso
from tagwarden.domain.alerts import Alert, RevertOutcome, RevertStatus
from tagwarden.domain.revert import PendingRevert, RevertRequest, RevertTarget
from tagwarden.ports import ConcurrentUpdateError, RecordedAlerts


class DynamoDbRevertLedger:
    """Reads a request with one GetItem, settles it with one conditional UpdateItem and releases its marker."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def pending_revert(self, request: RevertRequest) -> tuple[PendingRevert, RecordedAlerts] | None:
        """The request on its entry, with the entry's alerts and their delivery state."""
        item = self._table.get(key(tag_pk(request.tag), move_sk(request.entry_key)), "GetItem revert request")
        if item is None:
            return None
        pending = stored_pending_revert(request.tag, item)
        return (pending, recorded_alerts(item)) if pending is not None else None

    def settle_revert(
        self, pending: PendingRevert, outcome: RevertOutcome, alerts: tuple[Alert, ...]
    ) -> RecordedAlerts:
        """Status, reason and the alerts saying them, only while the request is still PENDING."""
        entry_key = key(tag_pk(pending.request.tag), move_sk(pending.request.entry_key))
        self._table.update(
            "UpdateItem settle revert",
            Key=entry_key,
            UpdateExpression="SET revert_status = :status, revert_detail = :detail, alerts = :alerts",
            ConditionExpression="revert_status = :pending",
            ExpressionAttributeValues=to_item(
                {
                    ":status": outcome.status.value,
                    ":detail": outcome.detail,
                    ":alerts": [alert.to_json() for alert in alerts],
                    ":pending": RevertStatus.PENDING.value,
                }
            ),
        )
        self.release_marker(replace(pending, status=outcome.status, detail=outcome.detail))
        item = self._table.get(entry_key, "GetItem settled revert")
        assert item is not None  # the update above found it; ledger entries are never deleted
        return recorded_alerts(item)

    def target(self, pending: PendingRevert) -> RevertTarget:
        """The target's digest record: its latest scan and when it was first seen (GetItem)."""
        item = self._table.get(digest_key(pending.request.tag.image, pending.target), "GetItem revert target")
        if item is None:
            return RevertTarget()
        first_seen = item.get("first_seen_at")
        return RevertTarget(optional_scan(item), parse_iso(first_seen) if first_seen else None)

    def release_marker(self, pending: PendingRevert) -> None:
        """The pointer's marker of a settled request: removed (NOT_REVERTED) or stamped settled (REVERTED), only
        while it is still this request's (or a marker written before markers named their request, with its
        target). The version moves, so a push guard write based on the marker as it was is retried."""
        if pending.pending:
            return
        ours = "(revert_request = :request OR (attribute_not_exists(revert_request) AND revert_to = :target))"
        if pending.status is RevertStatus.REVERTED:
            # Stamped once: a redelivery must not extend the window the revert's own push is expected in.
            expression = "SET revert_settled_at = :now, version = version + :one"
            condition = f"{ours} AND attribute_not_exists(revert_settled_at)"
        else:
            expression = "REMOVE revert_to, revert_request, revert_settled_at SET version = version + :one"
            condition = ours
        try:
            self._table.update(
                "UpdateItem release revert marker",
                Key=key(tag_pk(pending.request.tag), POINTER_SK),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(
                    {
                        ":request": pending.request.entry_key,
                        ":target": pending.target,
                        ":one": 1,
                        **({":now": iso(self._table.clock())} if pending.status is RevertStatus.REVERTED else {}),
                    }
                ),
            )
        except ConcurrentUpdateError:
            # Another request's marker now, or none (the revert's own push cleared it): nothing of ours to release.
            return
