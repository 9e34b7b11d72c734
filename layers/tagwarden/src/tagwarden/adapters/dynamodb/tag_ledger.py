"""The push guard's ledger: tag pointers and histories, and the digest records pushes touch."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.digests import (
    derivation_update,
    image_action_update,
    index_values,
    parent_update,
    scan_states,
    stored_derivation,
    unchanged_scan,
)
from tagwarden.adapters.dynamodb.items import (
    derived_entry_values,
    move_values,
    optional_scan,
    pointer_values,
    scan_values,
    stored_actor,
    stored_move,
    stored_pending_revert,
    stored_pointer,
)
from tagwarden.adapters.dynamodb.keys import (
    MOVE_PREFIX,
    MOVE_UPPER_BOUND,
    digest_key,
    key,
    key_text,
    move_sk,
    pending_actor_key,
    pointer_key,
    tag_pk,
)
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.domain.alerts import Actor
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef
from tagwarden.ports import IndexPush, TagSnapshot


class DynamoDbTagLedger:
    """Reads one tag action's state in one request and writes its decision in one transaction."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_for_action(self, tag: TagRef, action: ImageAction, children: Iterable[str] = ()) -> TagSnapshot:
        """Pointer, this event's history entry (at its own position or either a same-second tie could give
        it), the digest record, the records of an index's children and the actor CloudTrail may have left for
        this action, in one consistent BatchGetItem."""
        source = action.source
        positions = [source.key, source.last_in_its_second().key, source.just_before_its_second().key]
        entry_keys = [key(tag_pk(tag), move_sk(position)) for position in positions]
        image_key = digest_key(tag.image, action.digest)
        child_keys = {child: digest_key(tag.image, child) for child in dict.fromkeys(children)}
        actor_key = pending_actor_key(tag, action.action.value, action.digest)
        items = self._table.batch_get([pointer_key(tag), *entry_keys, image_key, actor_key, *child_keys.values()])
        pointer, image = items.get(key_text(pointer_key(tag))), items.get(key_text(image_key))
        existing, existing_key, existing_revert = None, None, None
        for position, entry_key in zip(positions, entry_keys, strict=True):
            if (entry := items.get(key_text(entry_key))) is not None:
                existing, existing_key = recorded_alerts(entry), position
                existing_revert = stored_pending_revert(tag, entry)
                break
        scans: dict[str, ScanState] = {}
        for digest, item_key in [(action.digest, image_key), *child_keys.items()]:
            scan = optional_scan(items.get(key_text(item_key), {}))
            if scan is not None:
                scans[digest] = scan
        return TagSnapshot(
            pointer=stored_pointer(pointer) if pointer else None,
            existing=existing,
            scans=scans,
            existing_key=existing_key,
            derivation=stored_derivation(image),
            existing_revert=existing_revert,
            pending_actor=stored_actor(items.get(key_text(actor_key), {})),
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
        index: IndexPush | None = None,
        pending_actor: Actor | None = None,
    ) -> None:
        """One TransactWriteItems: history entry with its alerts, pointer (optimistically locked), digest record;
        for an index, also its children on its record and the parent on each child's record; and a check that
        the action's pending actor is still the one read (an item, not a request)."""
        now = self._table.clock()
        entry = {**move_values(tag, decision.move, now), **outbox_values(decision.alerts, lease_until)}
        writes: list[dict[str, Any]] = [
            {"Put": {"Item": to_item(entry), "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        if decision.pointer is not None:
            writes.append({"Put": _pointer_put(tag, action, decision.pointer, expected, now)})
        if decision.relinked_successor is not None:
            writes.append({"Update": _relink(tag, decision.relinked_successor, decision.successor_previous_key)})
        if index is not None:
            writes += _index_writes(action, index, now)
        elif action.action is TagAction.PUSH:
            # A scan that landed since the read would be missing from the new pointer: read again.
            writes.append({"Update": unchanged_scan(image_action_update(action, now), decision.digest_scan)})
        writes.append({"ConditionCheck": _actor_unchanged(tag, action, pending_actor)})
        self._table.transact("TransactWriteItems tag action", writes)

    def record_untagged(self, action: ImageAction) -> None:
        """An idempotent update of the digest record: pushes and deletes that concern no tag."""
        self._table.update("UpdateItem digest record", **image_action_update(action, self._table.clock()))

    def _nearest(self, tag: TagRef, low: str, high: str, *, forward: bool, skip: str) -> TagMove | None:
        for item in self._table.query_between(tag_pk(tag), low, high, forward=forward, limit=2):
            if item["sk"] != skip:
                return stored_move(item)
        return None


def _index_writes(action: ImageAction, pushed: IndexPush, now: datetime) -> list[dict[str, Any]]:
    """The index's record (children, derived scan state, derivation counter) and each child's parent link.

    The derived state holds only while the children's scans are those read (each child's update is
    conditioned on it) and no other writer derived the index meanwhile (the counter)."""
    record = image_action_update(action, now)
    record["UpdateExpression"] = record["UpdateExpression"].replace("SET ", "SET children = :children, ", 1)
    values: dict[str, Any] = {":children": index_values(pushed.index)}
    if pushed.derived is not None:
        record["UpdateExpression"] = record["UpdateExpression"].replace("SET ", "SET #scan = :scan, ", 1)
        record.setdefault("ExpressionAttributeNames", {})["#scan"] = "scan"
        values[":scan"] = scan_values(pushed.derived)
    record["ExpressionAttributeValues"].update(to_item(values))
    writes: list[dict[str, Any]] = [{"Update": derivation_update(record, pushed.derivation)}]
    if pushed.derived is not None:
        entry = derived_entry_values(action.image, action.digest, pushed.derived, action.source, now)
        writes.append({"Put": {"Item": to_item(entry)}})
    for child in dict.fromkeys(c.digest for c in pushed.index.children):
        update = parent_update(action.image, child, action.digest, pushed.child_scans.get(child), now)
        writes.append({"Update": update})
    return writes


def _actor_unchanged(tag: TagRef, action: ImageAction, pending: Actor | None) -> dict[str, Any]:
    """CloudTrail's actor for this action is still what was read: if the trail watcher leaves one between the
    read and this write, the write fails and the retry reads it (the watcher, for its part, looks for the
    entry again after leaving the actor, so neither side misses the other)."""
    check: dict[str, Any] = {"Key": pending_actor_key(tag, action.action.value, action.digest)}
    if pending is None:
        check["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        check["ConditionExpression"] = "actor_event_id = :actor"
        check["ExpressionAttributeValues"] = to_item({":actor": pending.trail_event_id})
    return check


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
