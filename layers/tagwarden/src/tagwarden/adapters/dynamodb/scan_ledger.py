"""The scan recorder's ledger: scan entries, digest records' scan states, and the pointers that carry them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.digests import (
    derivation_update,
    digest_record_update,
    stored_derivation,
    stored_index,
    unchanged_parents,
    unchanged_scan,
)
from tagwarden.adapters.dynamodb.items import (
    derived_entry_values,
    mark_values,
    optional_scan,
    scan_entry_values,
    scan_values,
    stored_pointer,
)
from tagwarden.adapters.dynamodb.keys import digest_key, image_pk, key, key_text, pointer_key, scan_sk
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import MAX_TRANSACTION_ITEMS, LedgerTable, Values, to_item
from tagwarden.domain.scan_rules import ParentDecision, ParentSnapshot, ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.ports import ScanReading


class DynamoDbScanLedger:
    """Reads what a scan event needs in at most two batches and writes its decision transactionally."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """Digest record, this scan's entry and the reported tags' pointers; then pointers of other known tags
        and the records of the indexes holding the digest; then, for those indexes, their other children's
        records and their tags' pointers (the last two batches only for a platform manifest of an index)."""
        image_key = digest_key(scan.image, scan.digest)
        entry_key = key(image_pk(scan.image, scan.digest), scan_sk(scan.source.key))
        pointer_keys = {tag: pointer_key(TagRef(scan.image, tag)) for tag in scan.tags}
        items = self._table.batch_get([image_key, entry_key, *pointer_keys.values()])
        image = items.get(key_text(image_key))
        known = frozenset(image.get("tags", ())) if image else frozenset()
        extra = {tag: pointer_key(TagRef(scan.image, tag)) for tag in known - set(scan.tags)}
        parent_keys = (
            {parent: digest_key(scan.image, parent) for parent in sorted(image.get("parents", ()))} if image else {}
        )
        if extra or parent_keys:
            items.update(self._table.batch_get([*extra.values(), *parent_keys.values()]))
            pointer_keys.update(extra)
        pointers = {
            tag: stored_pointer(items[key_text(k)]) if key_text(k) in items else None for tag, k in pointer_keys.items()
        }
        entry = items.get(key_text(entry_key))
        current = optional_scan(image) if image else None
        parents = self._parents(scan, {parent: items.get(key_text(k)) for parent, k in parent_keys.items()})
        return ScanReading(ScanSnapshot(current, known, pointers, parents), recorded_alerts(entry) if entry else None)

    def _parents(self, scan: ScanCompleted, records: Mapping[str, Values | None]) -> dict[str, ParentSnapshot]:
        """The indexes holding the scanned digest, with their other children's scans and their tags' pointers."""
        indexes = {
            parent: (index, record)
            for parent, record in records.items()
            if record is not None and (index := stored_index(parent, record)) is not None
        }
        if not indexes:
            return {}
        siblings = {
            child: digest_key(scan.image, child)
            for index, _ in indexes.values()
            for child in index.platform_digests
            if child != scan.digest
        }
        tags = {
            tag: pointer_key(TagRef(scan.image, tag))
            for _, record in indexes.values()
            for tag in record.get("tags", ())
        }
        items = self._table.batch_get([*siblings.values(), *tags.values()])
        sibling_scans = {
            child: state
            for child, item_key in siblings.items()
            if (state := optional_scan(items.get(key_text(item_key), {}))) is not None
        }
        parents: dict[str, ParentSnapshot] = {}
        for parent, (index, record) in indexes.items():
            known = frozenset(record.get("tags", ()))
            parents[parent] = ParentSnapshot(
                index=index,
                current=optional_scan(record),
                derivation=stored_derivation(record),
                sibling_scans={c: sibling_scans[c] for c in index.platform_digests if c in sibling_scans},
                known_tags=known,
                pointers={
                    tag: stored_pointer(items[key_text(tags[tag])]) if key_text(tags[tag]) in items else None
                    for tag in known
                },
            )
        return parents

    def apply_scan(
        self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, lease_until: datetime
    ) -> None:
        """TransactWriteItems: scan entry with its alerts, digest record, carrying and moved tags' pointers.

        A transaction holds at most 100 items: the pointers of a digest with very many tags are written
        first, in transactions of their own (each pointer conditioned on its version, so a retry after a
        partial write skips the pointers already updated), and the last transaction records the scan.
        """
        now = self._table.clock()
        entry = {**scan_entry_values(scan, decision.state, now), **outbox_values(decision.alerts, lease_until)}
        record: list[dict[str, Any]] = [
            {"Put": {"Item": to_item(entry), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": _digest_scan_update(scan, decision, snapshot, now)},
        ]
        pointers: list[dict[str, Any]] = [
            {"Update": _pointer_update(scan, tag_name, pointer, carried=True)}
            for tag_name, pointer in decision.pointer_updates.items()
        ]
        pointers += [
            {"Update": _pointer_update(scan, tag_name, pointer, carried=False)}
            for tag_name, pointer in decision.moved_tags.items()
        ]
        for parent in decision.parents:
            update, derived = _parent_writes(scan, parent, now)
            # A changed derived state is recorded with the scan itself, as the digest's own state is: a retry
            # after a partial write decides again from the index's state as it was. A bare counter bump and
            # the derived history entry (an idempotent overwrite) may go ahead in an earlier transaction.
            (record if parent.state is not None else pointers).append(update)
            pointers += derived
            pointers += [
                {"Update": _pointer_update(scan, tag_name, pointer, carried=True)}
                for tag_name, pointer in parent.pointer_updates.items()
            ]
            pointers += [
                {"Update": _pointer_update(scan, tag_name, pointer, carried=False)}
                for tag_name, pointer in parent.moved_tags.items()
            ]
        room = MAX_TRANSACTION_ITEMS - len(record)
        split = max(0, len(pointers) - room)
        early, last = pointers[:split], pointers[split:]
        for start in range(0, len(early), MAX_TRANSACTION_ITEMS):
            self._table.transact("TransactWriteItems scan pointers", early[start : start + MAX_TRANSACTION_ITEMS])
        self._table.transact("TransactWriteItems scan", record + last)


def _digest_scan_update(
    scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, now: datetime
) -> dict[str, Any]:
    """Create the digest record if needed; replace its scan state only with a superseding scan."""
    replaces = decision.replaces_current
    update = digest_record_update(
        scan.image,
        scan.digest,
        scan.source.event_time,
        now,
        assignments=["#scan = :scan"] if replaces else [],
        values={":scan": scan_values(decision.state)} if replaces else None,
    )
    # The decision relied on the scan state read, and on the indexes known to hold the digest: both must
    # still be the ones there (an index pushed meanwhile would otherwise never learn of this scan).
    return unchanged_parents(unchanged_scan(update, snapshot.current), len(snapshot.parents))


def _parent_writes(
    scan: ScanCompleted, parent: ParentDecision, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An index holding the scanned digest: its record's update, with its derivation counter bumped (always,
    so that two of its children's scans cannot both derive from what each read of the other) and its new
    derived scan state if it changed; and then a derived entry for its scan history."""
    assignments = ["#scan = :scan"] if parent.state is not None else []
    values = {":scan": scan_values(parent.state)} if parent.state is not None else None
    update = digest_record_update(scan.image, parent.digest, scan.source.event_time, now, assignments, values)
    if parent.state is None:
        return {"Update": derivation_update(update, parent.derivation)}, []
    update["ExpressionAttributeNames"] = {"#scan": "scan"}
    entry = derived_entry_values(scan.image, parent.digest, parent.state, scan.source, now)
    return {"Update": derivation_update(update, parent.derivation)}, [{"Put": {"Item": to_item(entry)}}]


def _pointer_update(scan: ScanCompleted, tag_name: str, pointer: TagPointer, *, carried: bool) -> dict[str, Any]:
    """A pointer that names the scanned digest carries its scan (`carried`); one that moved away from it
    during the scan learns that the digest it named was scanned (`last_scanned`). Either way the version
    read pins the pointer: still naming (or, deleted, last naming) what the decision saw."""
    if carried:
        assert pointer.scan is not None
        assignment, value = "#scan = :value", scan_values(pointer.scan)
    else:
        assert pointer.last_scanned is not None
        assignment, value = "last_scanned = :value", mark_values(pointer.last_scanned)
    update: dict[str, Any] = {
        "Key": pointer_key(TagRef(scan.image, tag_name)),
        "UpdateExpression": f"SET {assignment}, version = :version",
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": to_item(
            {":value": value, ":version": pointer.version, ":expected": pointer.version - 1}
        ),
    }
    if carried:
        update["ExpressionAttributeNames"] = {"#scan": "scan"}
    return update
