"""The ledger on one DynamoDB table: conditional writes only, never a read-then-write without a condition."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tagwarden.adapters.ledger_items import (
    FINDING_SK,
    IMAGE_SK,
    MOVE_PREFIX,
    MOVE_UPPER_BOUND,
    POINTER_SK,
    Item,
    alerts_from_item,
    finding_pk,
    image_pk,
    iso,
    key,
    move_from_item,
    move_item,
    move_sk,
    pointer_from_item,
    pointer_item,
    scan_entry_item,
    scan_from_attr,
    scan_sk,
    scan_to_attr,
    tag_pk,
)
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, TagDecision
from tagwarden.domain.scan_rules import ScanDecision, ScanSnapshot
from tagwarden.domain.scans import ScanCompleted, ScanState
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef
from tagwarden.ports import (
    AlertEntry,
    ConcurrentUpdateError,
    FindingEntry,
    LedgerUnavailableError,
    ScanReading,
    TagEntry,
    TagSnapshot,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

BATCH_GET_LIMIT = 100
MAX_TRANSACTION_ITEMS = 100
UNPROCESSED_RETRIES = 6
# Conflicts a transaction can lose that mean "read again", not "the ledger is broken".
_RETRYABLE_CANCELLATIONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def ledger_errors(operation: str) -> Iterator[None]:
    """AWS errors become the core's own: a lost conditional race, or an unavailable ledger."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConcurrentUpdateError(f"{operation}: condition no longer holds") from error
        if code == "TransactionCanceledException":
            reasons = {r.get("Code", "None") for r in error.response.get("CancellationReasons", [])}
            if reasons - {"None"} <= _RETRYABLE_CANCELLATIONS:
                raise ConcurrentUpdateError(f"{operation}: {sorted(reasons - {'None'})}") from error
        raise LedgerUnavailableError(f"{operation} failed: {code or error}") from error
    except BotoCoreError as error:
        raise LedgerUnavailableError(f"{operation} failed: {error}") from error


class DynamoDbLedger:
    """Tag pointers, tag histories and digest records in one table (see `ledger_items` for the keys)."""

    def __init__(self, client: DynamoDBClient, table_name: str, clock: Callable[[], datetime] = _utcnow) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        self.requests = 0  # DynamoDB requests made, for the benchmark's budget check

    def read_for_action(self, tag: TagRef, action: ImageAction) -> TagSnapshot:
        """Pointer, this event's history entry and the digest record, in one consistent BatchGetItem."""
        pointer_key = key(tag_pk(tag), POINTER_SK)
        move_key = key(tag_pk(tag), move_sk(action.source.key))
        image_key = key(image_pk(tag.image, action.digest), IMAGE_SK)
        items = self._batch_get([pointer_key, move_key, image_key])
        pointer = items.get(key_text(pointer_key))
        existing = items.get(key_text(move_key))
        image = items.get(key_text(image_key))
        scans = {action.digest: scan_from_attr(image["scan"])} if image and "scan" in image else {}
        return TagSnapshot(
            pointer=pointer_from_item(pointer) if pointer else None,
            existing=move_from_item(existing) if existing else None,
            scans=scans,
        )

    def neighbours(self, tag: TagRef, event_key: str) -> Neighbours:
        """Two small queries, needed only for late events (rare)."""
        position = move_sk(event_key)
        before = self._query_one(tag, MOVE_PREFIX, position, forward=False, skip=position)
        after = self._query_one(tag, position, MOVE_UPPER_BOUND, forward=True, skip=position)
        return Neighbours(before=before, after=after)

    def history(self, tag: TagRef) -> list[TagMove]:
        """The tag's whole history, oldest first."""
        moves: list[TagMove] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": tag_pk(tag)}, ":prefix": {"S": MOVE_PREFIX}},
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            with ledger_errors("Query history"):
                self.requests += 1
                page = self._client.query(**kwargs)
            moves.extend(move_from_item(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return moves

    def pointer(self, tag: TagRef) -> TagPointer | None:
        """The tag's pointer, if the ledger has seen the tag."""
        with ledger_errors("GetItem pointer"):
            self.requests += 1
            item = self._client.get_item(
                TableName=self._table, Key=key(tag_pk(tag), POINTER_SK), ConsistentRead=True
            ).get("Item")
        return pointer_from_item(item) if item else None

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """Latest scan per digest, batched."""
        wanted = {digest: key(image_pk(image, digest), IMAGE_SK) for digest in dict.fromkeys(digests)}
        items = self._batch_get(list(wanted.values()))
        result: dict[str, ScanState] = {}
        for digest, item_key in wanted.items():
            item = items.get(key_text(item_key))
            if item and "scan" in item:
                result[digest] = scan_from_attr(item["scan"])
        return result

    def apply(self, tag: TagRef, action: ImageAction, decision: TagDecision, expected: TagPointer | None) -> None:
        """One TransactWriteItems: history entry, pointer (optimistically locked) and digest record."""
        now = self._clock()
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": move_item(tag, decision.move, now),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if decision.pointer is not None:
            items.append({"Put": self._pointer_put(tag, action, decision.pointer, expected, now)})
        if decision.relinked_successor is not None:
            items.append({"Update": self._relink(tag, decision.relinked_successor, decision.successor_previous_key)})
        if action.action is TagAction.PUSH:
            # A scan that landed since the read would be missing from the new pointer: read again.
            items.append({"Update": _unchanged_scan(self._image_update(action, now), decision.digest_scan)})
        with ledger_errors("TransactWriteItems tag action"):
            self.requests += 1
            self._client.transact_write_items(TransactItems=items)

    def mark_alerts_delivered(self, entry: AlertEntry) -> None:
        """Flag the entry's alerts as published."""
        with ledger_errors("UpdateItem alerts_delivered"):
            self.requests += 1
            self._client.update_item(
                TableName=self._table,
                Key=_entry_key(entry),
                UpdateExpression="SET alerts_delivered = :true REMOVE alerts_lease_until",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":true": {"BOOL": True}},
            )

    def claim_alert_delivery(self, entry: AlertEntry, now: datetime, until: datetime) -> bool:
        """Conditional lease: succeeds only if the alerts are undelivered and no live lease exists."""
        try:
            with ledger_errors("UpdateItem claim alert delivery"):
                self.requests += 1
                self._client.update_item(
                    TableName=self._table,
                    Key=_entry_key(entry),
                    UpdateExpression="SET alerts_lease_until = :until",
                    ConditionExpression=(
                        "alerts_delivered = :false AND "
                        "(attribute_not_exists(alerts_lease_until) OR alerts_lease_until < :now)"
                    ),
                    ExpressionAttributeValues={
                        ":until": {"S": iso(until)},
                        ":now": {"S": iso(now)},
                        ":false": {"BOOL": False},
                    },
                )
        except ConcurrentUpdateError:
            return False
        return True

    def mark_alerts_published(self, entry: AlertEntry, alert_ids: Iterable[str]) -> None:
        """Add the ids to the entry's set of published alerts."""
        ids = sorted(set(alert_ids))
        if not ids:
            return
        with ledger_errors("UpdateItem alerts_published"):
            self.requests += 1
            self._client.update_item(
                TableName=self._table,
                Key=_entry_key(entry),
                UpdateExpression="ADD alerts_published :ids",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":ids": {"SS": ids}},
            )

    def release_alert_delivery(self, entry: AlertEntry) -> None:
        """Drop the lease (only while the alerts are still undelivered)."""
        try:
            with ledger_errors("UpdateItem release alert delivery"):
                self.requests += 1
                self._client.update_item(
                    TableName=self._table,
                    Key=_entry_key(entry),
                    UpdateExpression="REMOVE alerts_lease_until",
                    ConditionExpression="alerts_delivered = :false",
                    ExpressionAttributeValues={":false": {"BOOL": False}},
                )
        except ConcurrentUpdateError:
            return

    def read_for_scan(self, scan: ScanCompleted) -> ScanReading:
        """Digest record, this scan's entry and the reported tags' pointers; then pointers of other known tags."""
        image_key = key(image_pk(scan.image, scan.digest), IMAGE_SK)
        entry_key = key(image_pk(scan.image, scan.digest), scan_sk(scan.source.key))
        pointer_keys = {tag: key(tag_pk(TagRef(scan.image, tag)), POINTER_SK) for tag in scan.tags}
        items = self._batch_get([image_key, entry_key, *pointer_keys.values()])
        image = items.get(key_text(image_key))
        known = frozenset(image["tags"]["SS"]) if image and "tags" in image else frozenset()
        extra = {tag: key(tag_pk(TagRef(scan.image, tag)), POINTER_SK) for tag in known - set(scan.tags)}
        if extra:
            items.update(self._batch_get(list(extra.values())))
            pointer_keys.update(extra)
        pointers = {
            tag: pointer_from_item(items[key_text(k)]) if key_text(k) in items else None
            for tag, k in pointer_keys.items()
        }
        entry = items.get(key_text(entry_key))
        existing = alerts_from_item(entry) if entry else None
        current = scan_from_attr(image["scan"]) if image and "scan" in image else None
        return ScanReading(ScanSnapshot(current, known, pointers), existing)

    def apply_scan(self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot) -> None:
        """TransactWriteItems: scan entry, digest record, carrying pointers and moved tags' pointers.

        A transaction holds at most 100 items: the pointers of a digest with very many tags are written
        first, in transactions of their own (each pointer conditioned on its version, so a retry after a
        partial write skips the pointers already updated), and the last transaction records the scan.
        """
        now = self._clock()
        record: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": scan_entry_item(scan, decision.state, decision.alerts, decision.alerts_lease_until, now),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Update": self._image_scan_update(scan, decision, snapshot, now)},
        ]
        pointers: list[TransactWriteItemTypeDef] = [
            {"Update": self._pointer_scan_update(scan, tag_name, pointer)}
            for tag_name, pointer in decision.pointer_updates.items()
        ]
        pointers += [
            {"Update": self._moved_pointer_update(scan, tag_name, pointer)}
            for tag_name, pointer in decision.moved_tags.items()
        ]
        room = MAX_TRANSACTION_ITEMS - len(record)
        early, last = pointers[: max(0, len(pointers) - room)], pointers[max(0, len(pointers) - room) :]
        for start in range(0, len(early), MAX_TRANSACTION_ITEMS):
            with ledger_errors("TransactWriteItems scan pointers"):
                self.requests += 1
                self._client.transact_write_items(TransactItems=early[start : start + MAX_TRANSACTION_ITEMS])
        with ledger_errors("TransactWriteItems scan"):
            self.requests += 1
            self._client.transact_write_items(TransactItems=record + last)

    def _moved_pointer_update(self, scan: ScanCompleted, tag_name: str, pointer: TagPointer) -> Any:
        """A tag that left the digest during its scan learns that the digest it named was scanned."""
        assert pointer.last_scanned is not None
        mark = pointer.last_scanned
        return {
            "TableName": self._table,
            "Key": key(tag_pk(TagRef(scan.image, tag_name)), POINTER_SK),
            "UpdateExpression": "SET last_scanned = :mark, version = :version",
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeValues": {
                ":mark": {"M": {"digest": {"S": mark.digest}, "scanned_at": {"S": iso(mark.scanned_at)}}},
                ":version": {"N": str(pointer.version)},
                ":expected": {"N": str(pointer.version - 1)},
            },
        }

    def _image_scan_update(
        self, scan: ScanCompleted, decision: ScanDecision, snapshot: ScanSnapshot, now: datetime
    ) -> Any:
        """Create the digest record if needed; replace its scan state only with a superseding scan."""
        assignments, values = _digest_record_basics(scan.image, scan.digest, scan.source.event_time, now)
        if decision.replaces_current:
            assignments.append("#scan = :scan")
            values[":scan"] = scan_to_attr(decision.state)
        update = {
            "TableName": self._table,
            "Key": key(image_pk(scan.image, scan.digest), IMAGE_SK),
            "UpdateExpression": "SET " + ", ".join(assignments),
            "ExpressionAttributeNames": {"#scan": "scan"},
            "ExpressionAttributeValues": values,
        }
        # The decision relied on the scan state read: it must still be the one there.
        return _unchanged_scan(update, snapshot.current)

    def _pointer_scan_update(self, scan: ScanCompleted, tag_name: str, pointer: TagPointer) -> Any:
        """Copy the scan onto a pointer that still names the scanned digest at the version read."""
        assert pointer.scan is not None
        return {
            "TableName": self._table,
            "Key": key(tag_pk(TagRef(scan.image, tag_name)), POINTER_SK),
            "UpdateExpression": "SET #scan = :scan, version = :version",
            # The version pins the pointer as read: still naming (or, deleted, last naming) the digest.
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeNames": {"#scan": "scan"},
            "ExpressionAttributeValues": {
                ":scan": scan_to_attr(pointer.scan),
                ":version": {"N": str(pointer.version)},
                ":expected": {"N": str(pointer.version - 1)},
            },
        }

    def record_untagged(self, action: ImageAction) -> None:
        """An idempotent update of the digest record: pushes and deletes that concern no tag."""
        update = self._image_update(action, self._clock())
        with ledger_errors("UpdateItem digest record"):
            self.requests += 1
            self._client.update_item(**update)

    def _pointer_put(
        self,
        tag: TagRef,
        action: ImageAction,
        pointer: TagPointer,
        expected: TagPointer | None,
        now: datetime,
    ) -> Any:
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": pointer_item(tag, pointer, action.source, now),
        }
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :expected"
            put["ExpressionAttributeValues"] = {":expected": {"N": str(expected.version)}}
        return put

    def _relink(self, tag: TagRef, successor: TagMove, expected_previous_key: str | None) -> Any:
        """Point the successor at the late entry, unless another late entry got in between meanwhile."""
        values: dict[str, Any] = {
            ":digest": {"S": successor.previous_digest},
            ":key": {"S": successor.previous_key},
            ":true": {"BOOL": True},
            ":alerted": {"BOOL": successor.alerted},
        }
        if expected_previous_key is None:
            condition = "attribute_exists(pk) AND attribute_not_exists(previous_key)"
        else:
            condition = "previous_key = :expected"
            values[":expected"] = {"S": expected_previous_key}
        return {
            "TableName": self._table,
            "Key": key(tag_pk(tag), move_sk(successor.source.key)),
            "UpdateExpression": (
                "SET previous_digest = :digest, previous_key = :key, relinked = :true, move_alerted = :alerted"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }

    def _image_update(self, action: ImageAction, now: datetime) -> Any:
        assignments, values = _digest_record_basics(action.image, action.digest, action.source.event_time, now)
        if action.action is TagAction.PUSH:
            assignments.append("last_pushed_at = :seen")
        else:
            assignments.append("deleted_at = :seen")
        expression = "SET " + ", ".join(assignments)
        if action.tag is not None and action.action is TagAction.PUSH:
            expression += " ADD tags :tags"
            values[":tags"] = {"SS": [action.tag]}
        return {
            "TableName": self._table,
            "Key": key(image_pk(action.image, action.digest), IMAGE_SK),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
        }

    def _query_one(self, tag: TagRef, low: str, high: str, *, forward: bool, skip: str) -> TagMove | None:
        with ledger_errors("Query neighbours"):
            self.requests += 1
            page = self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues={
                    ":pk": {"S": tag_pk(tag)},
                    ":low": {"S": low},
                    ":high": {"S": high},
                },
                ScanIndexForward=forward,
                ConsistentRead=True,
                Limit=2,
            )
        for item in page.get("Items", []):
            if item["sk"]["S"] != skip:
                return move_from_item(item)
        return None

    def _batch_get(self, keys: list[Item]) -> dict[str, Item]:
        """Consistent BatchGetItem over any number of keys, retrying unprocessed keys."""
        found: dict[str, Item] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            pending: list[Item] = keys[start : start + BATCH_GET_LIMIT]
            attempts = 0
            while pending:
                with ledger_errors("BatchGetItem"):
                    self.requests += 1
                    response = self._client.batch_get_item(
                        RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
                    )
                for item in response.get("Responses", {}).get(self._table, []):
                    found[key_text(item)] = item
                unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
                pending = list(unprocessed["Keys"]) if unprocessed else []
                if pending:
                    # DynamoDB returns unprocessed keys when throttled: back off before asking again.
                    attempts += 1
                    if attempts > UNPROCESSED_RETRIES:
                        raise LedgerUnavailableError(f"BatchGetItem: {len(pending)} keys still unprocessed")
                    time.sleep(random.uniform(0, 0.05 * 2**attempts))  # noqa: S311 - jitter, not security
        return found

    def digest_record(self, image: ImageName, digest: str) -> tuple[frozenset[str], ScanState | None] | None:
        """Read-only: None for a digest the ledger never saw; else the tags ever pushed to it and its latest scan."""
        with ledger_errors("GetItem digest record"):
            self.requests += 1
            item = self._client.get_item(
                TableName=self._table, Key=key(image_pk(image, digest), IMAGE_SK), ConsistentRead=True
            ).get("Item")
        if item is None:
            return None
        tags = frozenset(item["tags"]["SS"]) if "tags" in item else frozenset()
        return tags, scan_from_attr(item["scan"]) if "scan" in item else None

    def scan_history(self, image: ImageName, digest: str) -> list[ScanState]:
        """Read-only: every scan recorded for the digest (its `SCAN#` entries), oldest first."""
        from tagwarden.adapters.ledger_items import SCAN_PREFIX

        scans: list[ScanState] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": image_pk(image, digest)}, ":prefix": {"S": SCAN_PREFIX}},
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            with ledger_errors("Query scan history"):
                self.requests += 1
                page = self._client.query(**kwargs)
            scans.extend(scan_from_attr(item["scan"]) for item in page.get("Items", []) if "scan" in item)
            start = page.get("LastEvaluatedKey")
            if not start:
                return scans


def _unchanged_scan(update: Any, seen: ScanState | None) -> Any:
    """Condition a digest record's update on its scan state still being `seen` (none: still no scan)."""
    update.setdefault("ExpressionAttributeNames", {})["#scan"] = "scan"
    if seen is None:
        update["ConditionExpression"] = "attribute_not_exists(#scan)"
    else:
        update["ConditionExpression"] = "#scan.event_key = :seen_scan"
        update["ExpressionAttributeValues"][":seen_scan"] = {"S": seen.event_key or ""}
    return update


def _digest_record_basics(
    image: ImageName, digest: str, seen: datetime, now: datetime
) -> tuple[list[str], dict[str, Any]]:
    """The SET assignments (and their values) every write of a digest record makes: it creates the record
    the first time, whichever of a push or a scan arrives first."""
    values: dict[str, Any] = {
        ":kind": {"S": "image"},
        ":registry": {"S": image.registry},
        ":repository": {"S": image.repository},
        ":digest": {"S": digest},
        ":seen": {"S": iso(seen)},
        ":now": {"S": iso(now)},
        ":no_use": {"M": {}},
    }
    assignments = [
        "kind = :kind",
        "registry = :registry",
        "repository = :repository",
        "digest = :digest",
        "first_seen_at = if_not_exists(first_seen_at, :seen)",
        "in_use = if_not_exists(in_use, :no_use)",
        "updated_at = :now",
    ]
    return assignments, values


def _entry_key(entry: AlertEntry) -> Item:
    if isinstance(entry, TagEntry):
        return key(tag_pk(entry.tag), move_sk(entry.event_key))
    if isinstance(entry, FindingEntry):
        return key(finding_pk(entry.alert_id), FINDING_SK)
    return key(image_pk(entry.image, entry.digest), scan_sk(entry.event_key))


def key_text(item: Any) -> str:
    return f"{item['pk']['S']}\x00{item['sk']['S']}"
