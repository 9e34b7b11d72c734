"""The push guard's ledger: tag pointers and histories, and the digest records pushes touch."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.digests import image_action_update, scan_states, unchanged_scan
from tagwarden.adapters.dynamodb.items import move_values, optional_scan, pointer_values, stored_move, stored_pointer
from tagwarden.adapters.dynamodb.keys import (
    MOVE_PREFIX,
    MOVE_UPPER_BOUND,
    digest_key,
    key,
    key_text,
    move_sk,
    pointer_key,
    tag_pk,
)
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef
from tagwarden.ports import TagSnapshot


class DynamoDbTagLedger:
    """Reads one tag action's state in one request and writes its decision in one transaction."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_for_action(self, tag: TagRef, action: ImageAction) -> TagSnapshot:
        """Pointer, this event's history entry and the digest record, in one consistent BatchGetItem."""
        keys = [pointer_key(tag), key(tag_pk(tag), move_sk(action.source.key)), digest_key(tag.image, action.digest)]
        items = self._table.batch_get(keys)
        pointer, existing, image = (items.get(key_text(k)) for k in keys)
        scan = optional_scan(image) if image else None
        return TagSnapshot(
            pointer=stored_pointer(pointer) if pointer else None,
            existing=recorded_alerts(existing) if existing else None,
            scans={action.digest: scan} if scan is not None else {},
        )

    def neighbours(self, tag: TagRef, event_key: str) -> Neighbours:
        """Two small queries, needed only for late events (rare)."""
        position = move_sk(event_key)
        before = self._nearest(tag, MOVE_PREFIX, position, forward=False, skip=position)
        after = self._nearest(tag, position, MOVE_UPPER_BOUND, forward=True, skip=position)
        return Neighbours(before=before, after=after)

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """Latest scan per digest, batched."""
        return scan_states(self._table, image, digests)

    def apply(
        self,
        tag: TagRef,
        action: ImageAction,
        decision: TagDecision,
        expected: TagPointer | None,
        lease_until: datetime,
    ) -> None:
        """One TransactWriteItems: history entry with its alerts, pointer (optimistically locked), digest record."""
        now = self._table.clock()
        entry = {**move_values(tag, decision.move, now), **outbox_values(decision.alerts, lease_until)}
        writes: list[dict[str, Any]] = [
            {"Put": {"Item": to_item(entry), "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        if decision.pointer is not None:
            writes.append({"Put": _pointer_put(tag, action, decision.pointer, expected, now)})
        if decision.relinked_successor is not None:
            writes.append({"Update": _relink(tag, decision.relinked_successor, decision.successor_previous_key)})
        if action.action is TagAction.PUSH:
            # A scan that landed since the read would be missing from the new pointer: read again.
            writes.append({"Update": unchanged_scan(image_action_update(action, now), decision.digest_scan)})
        self._table.transact("TransactWriteItems tag action", writes)

    def record_untagged(self, action: ImageAction) -> None:
        """An idempotent update of the digest record: pushes and deletes that concern no tag."""
        self._table.update("UpdateItem digest record", **image_action_update(action, self._table.clock()))

    def _nearest(self, tag: TagRef, low: str, high: str, *, forward: bool, skip: str) -> TagMove | None:
        for item in self._table.query_between(tag_pk(tag), low, high, forward=forward, limit=2):
            if item["sk"] != skip:
                return stored_move(item)
        return None


def _pointer_put(
    tag: TagRef, action: ImageAction, pointer: TagPointer, expected: TagPointer | None, now: datetime
) -> dict[str, Any]:
    put: dict[str, Any] = {"Item": to_item(pointer_values(tag, pointer, action.source, now))}
    if expected is None:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = "version = :expected"
        put["ExpressionAttributeValues"] = to_item({":expected": expected.version})
    return put


def _relink(tag: TagRef, successor: TagMove, expected_previous_key: str | None) -> dict[str, Any]:
    """Point the successor at the late entry, unless another late entry got in between meanwhile."""
    values: dict[str, Any] = {
        ":digest": successor.previous_digest,
        ":key": successor.previous_key,
        ":true": True,
        ":alerted": successor.alerted,
    }
    if expected_previous_key is None:
        condition = "attribute_exists(pk) AND attribute_not_exists(previous_key)"
    else:
        condition = "previous_key = :expected"
        values[":expected"] = expected_previous_key
    return {
        "Key": key(tag_pk(tag), move_sk(successor.source.key)),
        "UpdateExpression": (
            "SET previous_digest = :digest, previous_key = :key, relinked = :true, move_alerted = :alerted"
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeValues": to_item(values),
    }
