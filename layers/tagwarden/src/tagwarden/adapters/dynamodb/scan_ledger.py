"""The scan recorder's ledger: scan entries, digest records' scan states, and the pointers that carry them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.digests import (
    derivation_update,
    digest_record_update,
    replace_tally,
    stored_derivation,
    stored_index,
    unchanged_parents,
    unchanged_scan,
    unchanged_tally,
)
from tagwarden.adapters.dynamodb.items import (
    derived_entry_values,
    finding_entry_values,
    finding_values,
    known_finding_values,
    mark_values,
    optional_scan,
    scan_entry_values,
    scan_values,
    stored_finding,
    stored_pointer,
    stored_tally,
    stored_usage,
    tally_values,
)
from tagwarden.adapters.dynamodb.keys import (
    Item,
    digest_key,
    finding_sk,
    image_pk,
    key,
    key_text,
    pointer_key,
    scan_sk,
)
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import MAX_TRANSACTION_ITEMS, LedgerTable, Values, to_item
from tagwarden.domain.alerts import Alert
from tagwarden.domain.findings import FindingReported
from tagwarden.domain.images import ImageName
from tagwarden.domain.scan_rules import FindingDecision, ParentDecision, ParentSnapshot, ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.observability import logger, metrics
from tagwarden.ports import FindingReading, ScanEntry, ScanReading


class DynamoDbScanLedger:
    """Reads what a scan event needs in at most two batches and writes its decision transactionally."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """Digest record, this scan's entry and the reported tags' pointers; then pointers of other known tags."""
        entry_key = key(image_pk(scan.image, scan.digest), scan_sk(scan.source.key))
        snapshot, items = self._read_digest(scan.image, scan.digest, scan.tags, [entry_key])
        entry = items.get(key_text(entry_key))
        return ScanReading(snapshot, recorded_alerts(entry) if entry else None)

    def read_for_finding(self, report: FindingReported) -> FindingReading:
        """As for a scan of the digest, with the finding's own item in the same first batch."""
        item_key = key(image_pk(report.image, report.digest), finding_sk(report.finding_id))
        snapshot, items = self._read_digest(report.image, report.digest, report.tags, [item_key])
        item = items.get(key_text(item_key))
        if item is None:
            return FindingReading(snapshot, None)
        known = stored_finding(item)
        revision = item.get("revision")
        if known.event_key != report.source.key or revision is None:
            return FindingReading(snapshot, known)
        # A repeated delivery of the event that changed the state: its alerts may still be undelivered.
        # A batch of one, not GetItem: the function's role reads the ledger with BatchGetItem only.
        entry = ScanEntry(report.image, report.digest, revision)
        entry_key = key(image_pk(report.image, report.digest), scan_sk(revision))
        recorded = self._table.batch_get([entry_key]).get(key_text(entry_key))
        return FindingReading(snapshot, known, entry, recorded_alerts(recorded) if recorded else None)

    def _read_digest(
        self, image: ImageName, digest: str, tags: Iterable[str], more: list[Item]
    ) -> tuple[ScanSnapshot, dict[str, Values]]:
        """The digest record, `more` items and the named tags' pointers in one batch; then pointers of the
        digest's other known tags and the records of the indexes holding the digest; then, for those indexes,
        their other children's records and their tags' pointers (only for a platform manifest of an index)."""
        image_key = digest_key(image, digest)
        pointer_keys = {tag: pointer_key(TagRef(image, tag)) for tag in tags}
        items = self._table.batch_get([image_key, *more, *pointer_keys.values()])
        record = items.get(key_text(image_key))
        known = frozenset(record.get("tags", ())) if record else frozenset()
        extra = {tag: pointer_key(TagRef(image, tag)) for tag in known - set(tags)}
        parent_keys = (
            {parent: digest_key(image, parent) for parent in sorted(record.get("parents", ()))} if record else {}
        )
        if extra or parent_keys:
            items.update(self._table.batch_get([*extra.values(), *parent_keys.values()]))
            pointer_keys.update(extra)
        pointers = {
            tag: stored_pointer(items[key_text(k)]) if key_text(k) in items else None for tag, k in pointer_keys.items()
        }
        current = optional_scan(record) if record else None
        usage = stored_usage(record) if record else {}
        tally = stored_tally(record) if record else None
        parents = self._parents(image, digest, {parent: items.get(key_text(k)) for parent, k in parent_keys.items()})
        return ScanSnapshot(current, known, pointers, in_use=usage, findings=tally, parents=parents), items

    def _parents(
        self, image: ImageName, digest: str, records: Mapping[str, Values | None]
    ) -> dict[str, ParentSnapshot]:
        """The indexes holding the scanned digest, with their other children's scans and their tags' pointers."""
        indexes = {
            parent: (index, record)
            for parent, record in records.items()
            if record is not None and (index := stored_index(parent, record)) is not None
        }
        if not indexes:
            return {}
        siblings = {
            child: digest_key(image, child)
            for index, _ in indexes.values()
            for child in index.platform_digests
            if child != digest
        }
        tags = {
            tag: pointer_key(TagRef(image, tag)) for _, record in indexes.values() for tag in record.get("tags", ())
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
                in_use=stored_usage(record),
                pointers={
                    tag: stored_pointer(items[key_text(tags[tag])]) if key_text(tags[tag]) in items else None
                    for tag in known
                },
            )
        return parents

    def apply_scan(
        self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, lease_until: datetime
    ) -> None:
        """TransactWriteItems: scan entry with its alerts, digest record, carrying and moved tags' pointers,
        and the deployment findings the scan raised.

        A transaction holds at most 100 items: the pointers of a digest with very many tags are written
        first, in transactions of their own (each pointer conditioned on its version, so a retry after a
        partial write skips the pointers already updated), and the last transaction records the scan. So do
        the derived states of indexes beyond what the last transaction holds (a platform of ~95 indexes or
        more), each after its own tags' pointers; the decision's in-use findings are bounded
        (`scan_rules.MAX_IN_USE_ALERTS`) so that the last transaction always has room for the scan itself.
        """
        now = self._table.clock()
        entry = {**scan_entry_values(scan, decision.state, now), **outbox_values(decision.alerts, lease_until)}
        record: list[dict[str, Any]] = [
            {"Put": {"Item": to_item(entry), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": _digest_scan_update(scan.image, scan.digest, scan.source.event_time, decision, snapshot, now)},
        ]
        self._write(scan.image, decision, record, now, scan.source)

    def apply_finding(
        self,
        report: FindingReported,
        decision: FindingDecision,
        reading: FindingReading,
        lease_until: datetime,
    ) -> None:
        """TransactWriteItems: the finding (conditioned on the event read), the digest's tally and, with a
        new state, its scan entry with alerts, pointers and deployment findings, and the indexes holding the
        digest whose derived state it changed (as `apply_scan` writes them)."""
        now = self._table.clock()
        scan = decision.scan
        revision = scan.state.event_key if scan is not None else None
        finding = to_item(known_finding_values(report, revision, now))
        if reading.known is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "event_key = :read",
                "ExpressionAttributeValues": to_item({":read": reading.known.event_key}),
            }
        record: list[dict[str, Any]] = [{"Put": {"Item": finding, **condition}}]
        if scan is None:
            tally_only = replace_tally(report.image, report.digest, report.source.event_time, now, decision.tally)
            record.append({"Update": unchanged_tally(tally_only, reading.snapshot.findings)})
            self._table.transact("TransactWriteItems finding", record)
            return
        entry = {**finding_entry_values(report, scan.state, now), **outbox_values(scan.alerts, lease_until)}
        record.append({"Put": {"Item": to_item(entry), "ConditionExpression": "attribute_not_exists(pk)"}})
        digest = _digest_scan_update(report.image, report.digest, report.source.event_time, scan, reading.snapshot, now)
        record.append({"Update": digest})
        self._write(report.image, scan, record, now, report.source)

    def _write(
        self,
        image: ImageName,
        decision: ScanDecision,
        record: list[dict[str, Any]],
        now: datetime,
        source: SourceEvent,
    ) -> None:
        record = record + [{"Update": deployment_finding_update(alert, now)} for alert in decision.findings]
        pointers: list[dict[str, Any]] = [
            {"Update": _pointer_update(image, tag_name, pointer, carried=True)}
            for tag_name, pointer in decision.pointer_updates.items()
        ]
        pointers += [
            {"Update": _pointer_update(image, tag_name, pointer, carried=False)}
            for tag_name, pointer in decision.moved_tags.items()
        ]
        # A changed derived state is recorded with the scan itself, as the digest's own state is: a retry
        # after a partial write decides again from the index's state as it was. A bare counter bump and
        # the derived history entry (an idempotent overwrite) may go ahead in an earlier transaction.
        changed = sum(1 for parent in decision.parents if parent.state is not None)
        with_scan = min(changed, MAX_TRANSACTION_ITEMS - len(record))
        ahead: list[dict[str, Any]] = []
        for parent in decision.parents:
            update, derived = _parent_writes(image, source, parent, now)
            writes = derived + [
                {"Update": _pointer_update(image, tag_name, pointer, carried=True)}
                for tag_name, pointer in parent.pointer_updates.items()
            ]
            writes += [
                {"Update": _pointer_update(image, tag_name, pointer, carried=False)}
                for tag_name, pointer in parent.moved_tags.items()
            ]
            if parent.state is None:
                pointers += [update, *writes]
            elif with_scan > 0:
                with_scan -= 1
                record.append(update)
                pointers += writes
            else:
                # More indexes than the scan's transaction holds (about 95 indexes share the platform): this
                # index's state goes ahead, conditioned on its derivation counter, after its pointers and in
                # the same or a later transaction, so a retry that finds the state written finds its pointers
                # written too; one that does not decides again. A retry after such a partial write raises no
                # in-use finding for this index (its verdict already reads `fail`): the audit watcher does.
                ahead += [*writes, update]
        if ahead:
            logger.warning(
                "indexes written ahead of the scan",
                extra={"image": str(image), "event_id": source.event_id, "indexes": changed},
            )
            metrics.add_metric(name="IndexStatesWrittenAhead", unit="Count", value=1)
        pointers = ahead + pointers
        room = MAX_TRANSACTION_ITEMS - len(record)
        split = max(0, len(pointers) - room)
        early, last = pointers[:split], pointers[split:]
        for start in range(0, len(early), MAX_TRANSACTION_ITEMS):
            self._table.transact("TransactWriteItems scan pointers", early[start : start + MAX_TRANSACTION_ITEMS])
        self._table.transact("TransactWriteItems scan", record + last)


def _digest_scan_update(
    image: ImageName,
    digest: str,
    seen: datetime,
    decision: ScanDecision,
    snapshot: ScanSnapshot,
    now: datetime,
) -> dict[str, Any]:
    """Create the digest record if needed; replace its scan state only with a superseding scan, and its
    finding tally when the report changed it."""
    replaces = decision.replaces_current
    assignments = ["#scan = :scan"] if replaces else []
    values: dict[str, Any] = {":scan": scan_values(decision.state)} if replaces else {}
    if decision.tally is not None:
        assignments.append("#findings = :tally")
        values[":tally"] = tally_values(decision.tally)
    update = digest_record_update(image, digest, seen, now, assignments=assignments, values=values or None)
    # The decision relied on the scan state (and tally) read, and on the indexes known to hold the digest: they
    # must still be the ones there (an index pushed meanwhile would otherwise never learn of this scan).
    update = unchanged_parents(unchanged_scan(update, snapshot.current), len(snapshot.parents))
    return unchanged_tally(update, snapshot.findings) if decision.tally is not None else update


def _parent_writes(
    image: ImageName, source: SourceEvent, parent: ParentDecision, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An index holding the scanned digest (`source`: the scan or finding event): its record's update, with
    its derivation counter bumped (always, so that two of its children's scans or findings cannot both derive
    from what each read of the other) and its new derived scan state if it changed; and then a derived entry
    for its scan history."""
    assignments = ["#scan = :scan"] if parent.state is not None else []
    values = {":scan": scan_values(parent.state)} if parent.state is not None else None
    update = digest_record_update(image, parent.digest, source.event_time, now, assignments, values)
    if parent.state is None:
        return {"Update": derivation_update(update, parent.derivation)}, []
    update["ExpressionAttributeNames"] = {"#scan": "scan"}
    entry = derived_entry_values(image, parent.digest, parent.state, source, now)
    return {"Update": derivation_update(update, parent.derivation)}, [{"Put": {"Item": to_item(entry)}}]


def _pointer_update(image: ImageName, tag_name: str, pointer: TagPointer, *, carried: bool) -> dict[str, Any]:
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
        "Key": pointer_key(TagRef(image, tag_name)),
        "UpdateExpression": f"SET {assignment}, version = :version",
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": to_item(
            {":value": value, ":version": pointer.version, ":expected": pointer.version - 1}
        ),
    }
    if carried:
        update["ExpressionAttributeNames"] = {"#scan": "scan"}
    return update


def deployment_finding_update(alert: Alert, now: datetime) -> dict[str, Any]:
    """Record a deployment finding the scan recorder raised (its alert is on the scan entry): the audit
    watcher finds it recorded and does not raise it again. Unconditional and idempotent: the ids carry the
    failing episode, which starts with this very write."""
    values = finding_values(alert, now)
    item_key = key(values.pop("pk"), values.pop("sk"))
    kept = ("first_seen_at", "recorded_at")
    assignments = [
        f"{name} = if_not_exists({name}, :{name})" if name in kept else f"{name} = :{name}" for name in values
    ]
    return {
        "Key": item_key,
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ExpressionAttributeValues": to_item({f":{name}": value for name, value in values.items()}),
    }
