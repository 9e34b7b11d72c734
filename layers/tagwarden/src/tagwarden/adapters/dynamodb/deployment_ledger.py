"""The audit watcher's ledger: batched reads of a batch's images, usage on pointers and digests, findings,
and, only for lines older than what they name, tag histories and scan histories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.items import (
    finding_values,
    optional_scan,
    rollouts_values,
    stored_pointer,
    stored_rollouts,
    stored_scan,
    stored_usage,
)
from tagwarden.adapters.dynamodb.keys import (
    FINDING_SK,
    MOVE_PREFIX,
    SCAN_PREFIX,
    digest_key,
    finding_pk,
    image_pk,
    key,
    key_text,
    move_sk,
    pointer_key,
    rollouts_key,
    tag_pk,
)
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, from_item, ledger_errors, to_item
from tagwarden.clock import iso
from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import DeploymentView, DigestKey, TagPosition, moment_key
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import TagAction, TagPointer, TagRef
from tagwarden.domain.workloads import Rollouts, merged_rollouts
from tagwarden.observability import logger, metrics
from tagwarden.ports import ConcurrentUpdateError, RecordedAlerts, UsageUpdate

# History entries per Query page: one page covers the lines of a delivery unless the tag moved that often.
HISTORY_PAGE = 4
# Conditional writes of one workload's rollouts before leaving them to the concurrent writer.
ROLLOUT_WRITE_ATTEMPTS = 3


class DynamoDbDeploymentLedger:
    """What the audit watcher reads in batches and writes one item at a time."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_deployment_view(
        self, tags: Iterable[TagRef], digests: Iterable[DigestKey], locations: Iterable[str] = ()
    ) -> DeploymentView:
        """One consistent BatchGetItem per 100 distinct tags, digests and workloads. Nothing is cached across
        calls: tags move, and a cache keyed by tag is exactly the hole Tagwarden closes."""
        tag_keys = {tag: pointer_key(tag) for tag in tags}
        digest_keys = {digest: digest_key(*digest) for digest in digests}
        location_keys = {location: rollouts_key(location) for location in locations}
        items = self._table.batch_get([*tag_keys.values(), *digest_keys.values(), *location_keys.values()])
        pointers: dict[TagRef, TagPointer | None] = {}
        for tag, item_key in tag_keys.items():
            pointer = items.get(key_text(item_key))
            pointers[tag] = stored_pointer(pointer) if pointer else None
        scans: dict[DigestKey, ScanState] = {}
        usage: dict[DigestKey, dict[str, datetime]] = {}
        for digest, item_key in digest_keys.items():
            image = items.get(key_text(item_key))
            if image is None:
                continue
            usage[digest] = stored_usage(image)
            scan = optional_scan(image)
            if scan is not None:
                scans[digest] = scan
        rollouts = {
            location: _readable_rollouts(location, items.get(key_text(item_key)))
            for location, item_key in location_keys.items()
        }
        return DeploymentView(pointers, scans, usage, rollouts=rollouts)

    def tag_history(self, tag: TagRef, earliest: datetime, latest: datetime) -> tuple[TagPosition, ...]:
        """History entries at or before `latest`, newest first, until the one in force at `earliest`.

        A Query backwards from `latest`, a few entries per page: one request unless the tag moved several
        times between the lines of one delivery.
        """
        floor = moment_key(earliest)
        positions: list[TagPosition] = []
        request: dict[str, Any] = {
            "TableName": self._table.name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": to_item(
                {":pk": tag_pk(tag), ":low": MOVE_PREFIX, ":high": move_sk(moment_key(latest))}
            ),
            "ProjectionExpression": "sk, #action, digest",
            "ExpressionAttributeNames": {"#action": "action"},
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": HISTORY_PAGE,
        }
        while True:
            with ledger_errors("Query tag history"):
                page = self._table.client.query(**request)
            for raw in page.get("Items", []):
                item = from_item(raw)
                deleted = item.get("action") == TagAction.DELETE.value
                positions.append(TagPosition(item["sk"][len(MOVE_PREFIX) :], None if deleted else item.get("digest")))
            if (positions and positions[-1].event_key <= floor) or "LastEvaluatedKey" not in page:
                return tuple(positions)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def first_completed_scans(self, digests: Iterable[DigestKey]) -> dict[DigestKey, datetime]:
        """When each digest first completed a scan, from its scan history (one Query per digest)."""
        first: dict[DigestKey, datetime] = {}
        for image, digest in digests:
            entries = self._table.query_prefix(image_pk(image, digest), SCAN_PREFIX, "Query scan history")
            completed = [scan.scanned_at for e in entries if "scan" in e and (scan := stored_scan(e["scan"])).completed]
            if completed:
                first[(image, digest)] = min(completed)
        return first

    def record_rollouts(self, changes: Mapping[str, tuple[Rollouts, Rollouts]]) -> None:
        """Put each workload's rollouts, provided nobody wrote them since they were read.

        Two deliveries (two API servers' log streams) may update one workload at once: the loser reads the
        winner's record and writes both merged (`merged_rollouts`), a few times at most. If it still loses,
        the other writer's rollouts stay: at worst one finding is alerted once more, or a rollback is
        alerted on its next line.
        """
        now = self._table.clock()
        for location, (read, rollouts) in changes.items():
            for attempt in range(1, ROLLOUT_WRITE_ATTEMPTS + 1):
                if self._put_rollouts(location, read, rollouts, now) or attempt == ROLLOUT_WRITE_ATTEMPTS:
                    break
                read = _readable_rollouts(location, self._table.get(rollouts_key(location), "GetItem rollouts"))
                rollouts = merged_rollouts(rollouts, read)
                if rollouts.same_record(read):
                    break

    def _put_rollouts(self, location: str, read: Rollouts, rollouts: Rollouts, now: datetime) -> bool:
        item = rollouts_values(location, rollouts, read.version + 1, now)
        request: dict[str, Any] = {"Item": to_item(item)}
        if read.version:
            request["ConditionExpression"] = "version = :read"
            request["ExpressionAttributeValues"] = to_item({":read": read.version})
        else:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        try:
            self._table.put("PutItem rollouts", **request)
        except ConcurrentUpdateError:
            return False
        return True

    def record_usage(self, updates: Iterable[UsageUpdate]) -> None:
        """Set `in_use[location]` on existing pointers and digest records, forgetting stale locations.

        A pointer's version is bumped, so a push guard that read the pointer before writes it again with
        this usage rather than over it.
        """
        for update in updates:
            names = {"#location": update.location}
            names.update({f"#forget{n}": location for n, location in enumerate(update.forget)})
            values: dict[str, Any] = {":seen": iso(update.seen_at)}
            expression = "SET in_use.#location = :seen"
            if update.tag is not None:
                item_key = pointer_key(update.tag)
                expression += ", version = version + :one"
                values[":one"] = 1
            elif update.digest is not None:
                item_key = digest_key(*update.digest)
            else:
                continue
            if update.forget:
                expression += " REMOVE " + ", ".join(f"in_use.#forget{n}" for n in range(len(update.forget)))
            try:
                self._table.update(
                    "UpdateItem usage",
                    Key=item_key,
                    UpdateExpression=expression,
                    # Only where in_use exists: a usage record never creates a pointer or digest record.
                    ConditionExpression="attribute_exists(in_use)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=to_item(values),
                )
            except ConcurrentUpdateError:
                continue

    def recorded_findings(self, alert_ids: Iterable[str]) -> dict[str, RecordedAlerts]:
        """The findings already recorded among these ids, in one BatchGetItem per 100."""
        keys = {alert_id: key(finding_pk(alert_id), FINDING_SK) for alert_id in alert_ids}
        items = self._table.batch_get(list(keys.values()))
        return {
            alert_id: recorded_alerts(items[key_text(item_key)])
            for alert_id, item_key in keys.items()
            if key_text(item_key) in items
        }

    def record_finding(self, alert: Alert, lease_until: datetime) -> RecordedAlerts | None:
        """Conditional put of the finding; on a repeat, read what the first observation recorded."""
        item = {**finding_values(alert, self._table.clock()), **outbox_values((alert,), lease_until)}
        try:
            self._table.put("PutItem finding", Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ConcurrentUpdateError:
            existing = self._table.get(key(finding_pk(alert.alert_id), FINDING_SK), "GetItem finding")
            return recorded_alerts(existing) if existing else RecordedAlerts()
        return None


def _readable_rollouts(location: str, item: Mapping[str, Any] | None) -> Rollouts:
    """A workload's stored rollouts; an item that does not read (a hand edit, a format this version does not
    know) reads as no rollouts at its version, so it costs only its workload: its lines are judged as new
    rollouts (alerted once more at most) and the conditional write on that version replaces it."""
    if not item:
        return Rollouts()
    try:
        return stored_rollouts(item)
    except (ValueError, TypeError, AttributeError) as error:
        metrics.add_metric(name="UnreadableRollouts", unit="Count", value=1)
        logger.warning("workload rollouts unreadable; replaced", extra={"location": location, "reason": str(error)})
        try:
            return Rollouts(version=int(item.get("version", 0)))
        except (ValueError, TypeError):
            return Rollouts()
