"""The audit watcher's ledger: batched reads of a batch's images, usage on pointers and digests, findings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.items import finding_values, optional_scan, stored_pointer, stored_usage
from tagwarden.adapters.dynamodb.keys import FINDING_SK, digest_key, finding_pk, key, key_text, pointer_key
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, iso, to_item
from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import DeploymentView, DigestKey
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.ports import ConcurrentUpdateError, RecordedAlerts, UsageUpdate


class DynamoDbDeploymentLedger:
    """What the audit watcher reads in batches and writes one item at a time."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_deployment_view(self, tags: Iterable[TagRef], digests: Iterable[DigestKey]) -> DeploymentView:
        """One consistent BatchGetItem per 100 distinct tags and digests. Nothing is cached across calls:
        tags move, and a cache keyed by tag is exactly the hole Tagwarden closes."""
        tag_keys = {tag: pointer_key(tag) for tag in tags}
        digest_keys = {digest: digest_key(*digest) for digest in digests}
        items = self._table.batch_get([*tag_keys.values(), *digest_keys.values()])
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
        return DeploymentView(pointers, scans, usage)

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
