"""The scan recorder's ledger: scan entries, digest records' scan states, and the pointers that carry them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.digests import digest_record_update, unchanged_scan
from tagwarden.adapters.dynamodb.items import (
    mark_values,
    optional_scan,
    scan_entry_values,
    scan_values,
    stored_pointer,
)
from tagwarden.adapters.dynamodb.keys import digest_key, image_pk, key, key_text, pointer_key, scan_sk
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import MAX_TRANSACTION_ITEMS, LedgerTable, to_item
from tagwarden.domain.scan_rules import ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.ports import ScanReading


class DynamoDbScanLedger:
    """Reads what a scan event needs in at most two batches and writes its decision transactionally."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """Digest record, this scan's entry and the reported tags' pointers; then pointers of other known tags."""
        image_key = digest_key(scan.image, scan.digest)
        entry_key = key(image_pk(scan.image, scan.digest), scan_sk(scan.source.key))
        pointer_keys = {tag: pointer_key(TagRef(scan.image, tag)) for tag in scan.tags}
        items = self._table.batch_get([image_key, entry_key, *pointer_keys.values()])
        image = items.get(key_text(image_key))
        known = frozenset(image.get("tags", ())) if image else frozenset()
        extra = {tag: pointer_key(TagRef(scan.image, tag)) for tag in known - set(scan.tags)}
        if extra:
            items.update(self._table.batch_get(list(extra.values())))
            pointer_keys.update(extra)
        pointers = {
            tag: stored_pointer(items[key_text(k)]) if key_text(k) in items else None for tag, k in pointer_keys.items()
        }
        entry = items.get(key_text(entry_key))
        current = optional_scan(image) if image else None
        return ScanReading(ScanSnapshot(current, known, pointers), recorded_alerts(entry) if entry else None)

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
    # The decision relied on the scan state read: it must still be the one there.
    return unchanged_scan(update, snapshot.current)


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
