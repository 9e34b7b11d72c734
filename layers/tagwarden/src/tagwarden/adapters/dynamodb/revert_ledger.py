"""The reverter's ledger: revert requests recorded on tag history entries, read and settled once.

The push guard writes a request with the overwrite's entry (`items.revert_values`: `revert_status` PENDING,
`revert_target`), in the same transaction as the move. The reverter settles it with one conditional update:
status, the reason, and the entry's alerts rewritten to say the outcome (their delivery is the outbox's).
"""

from __future__ import annotations

from tagwarden.adapters.dynamodb.items import stored_pending_revert
from tagwarden.adapters.dynamodb.keys import key, move_sk, tag_pk
from tagwarden.adapters.dynamodb.outbox import recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.domain.alerts import Alert, RevertOutcome, RevertStatus
from tagwarden.domain.revert import PendingRevert, RevertRequest
from tagwarden.ports import RecordedAlerts


class DynamoDbRevertLedger:
    """Reads a request with one GetItem, settles it with one conditional UpdateItem."""

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
        item = self._table.get(entry_key, "GetItem settled revert")
        assert item is not None  # the update above found it; ledger entries are never deleted
        return recorded_alerts(item)
