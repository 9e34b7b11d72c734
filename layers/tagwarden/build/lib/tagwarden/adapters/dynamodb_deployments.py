"""The ledger as the audit watcher uses it: batched reads of a batch's images, usage, findings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb_ledger import DynamoDbLedger, key_text, ledger_errors
from tagwarden.adapters.ledger_items import (
    FINDING_SK,
    IMAGE_SK,
    POINTER_SK,
    alerts_from_item,
    finding_item,
    finding_pk,
    image_pk,
    in_use_from_item,
    iso,
    key,
    pointer_from_item,
    scan_from_attr,
    tag_pk,
)
from tagwarden.domain.alerts import Alert
from tagwarden.domain.deployments import DeploymentView, DigestKey
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.ports import ConcurrentUpdateError, RecordedAlerts, UsageUpdate


class DynamoDbDeploymentLedger(DynamoDbLedger):
    """Adds the audit watcher's access paths to the ledger."""

    def read_deployment_view(self, tags: Iterable[TagRef], digests: Iterable[DigestKey]) -> DeploymentView:
        """One consistent BatchGetItem per 100 distinct tags and digests. Nothing is cached across calls:
        tags move, and a cache keyed by tag is exactly the hole Tagwarden closes."""
        tag_keys = {tag: key(tag_pk(tag), POINTER_SK) for tag in tags}
        digest_keys = {digest: key(image_pk(*digest), IMAGE_SK) for digest in digests}
        items = self._batch_get([*tag_keys.values(), *digest_keys.values()])
        pointers: dict[TagRef, TagPointer | None] = {}
        for tag, item_key in tag_keys.items():
            pointer = items.get(key_text(item_key))
            pointers[tag] = pointer_from_item(pointer) if pointer else None
        scans: dict[DigestKey, ScanState] = {}
        usage: dict[DigestKey, dict[str, datetime]] = {}
        for digest, item_key in digest_keys.items():
            image = items.get(key_text(item_key))
            if image is None:
                continue
            usage[digest] = in_use_from_item(image)
            if "scan" in image:
                scans[digest] = scan_from_attr(image["scan"])
        return DeploymentView(pointers, scans, usage)

    def record_usage(self, updates: Iterable[UsageUpdate]) -> None:
        """Set `in_use[location]` on existing pointers and digest records, forgetting stale locations.

        A pointer's version is bumped, so a push guard that read the pointer before writes it again with
        this usage rather than over it.
        """
        for update in updates:
            names = {"#location": update.location}
            names.update({f"#forget{n}": location for n, location in enumerate(update.forget)})
            values: dict[str, Any] = {":seen": {"S": iso(update.seen_at)}}
            expression = "SET in_use.#location = :seen"
            if update.tag is not None:
                item_key = key(tag_pk(update.tag), POINTER_SK)
                expression += ", version = version + :one"
                values[":one"] = {"N": "1"}
            elif update.digest is not None:
                item_key = key(image_pk(*update.digest), IMAGE_SK)
            else:
                continue
            if update.forget:
                expression += " REMOVE " + ", ".join(f"in_use.#forget{n}" for n in range(len(update.forget)))
            try:
                with ledger_errors("UpdateItem usage"):
                    self.requests += 1
                    self._client.update_item(
                        TableName=self._table,
                        Key=item_key,
                        UpdateExpression=expression,
                        # Only where in_use exists: a usage record never creates a pointer or digest record.
                        ConditionExpression="attribute_exists(in_use)",
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )
            except ConcurrentUpdateError:
                continue

    def recorded_findings(self, alert_ids: Iterable[str]) -> dict[str, RecordedAlerts]:
        """The findings already recorded among these ids, in one BatchGetItem per 100."""
        keys = {alert_id: key(finding_pk(alert_id), FINDING_SK) for alert_id in alert_ids}
        items = self._batch_get(list(keys.values()))
        return {
            alert_id: alerts_from_item(items[key_text(item_key)])
            for alert_id, item_key in keys.items()
            if key_text(item_key) in items
        }

    def record_finding(self, alert: Alert, lease_until: datetime) -> RecordedAlerts | None:
        """Conditional put of the finding; on a repeat, read what the first observation recorded."""
        item_key = key(finding_pk(alert.alert_id), FINDING_SK)
        try:
            with ledger_errors("PutItem finding"):
                self.requests += 1
                self._client.put_item(
                    TableName=self._table,
                    Item=finding_item(alert, lease_until, self._clock()),
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConcurrentUpdateError:
            with ledger_errors("GetItem finding"):
                self.requests += 1
                existing: Any = self._client.get_item(TableName=self._table, Key=item_key, ConsistentRead=True).get(
                    "Item"
                )
            return alerts_from_item(existing) if existing else RecordedAlerts()
        return None
