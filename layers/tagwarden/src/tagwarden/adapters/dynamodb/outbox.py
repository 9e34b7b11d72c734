"""The alert outbox on the ledger table: alerts stored on the entry that raised them, and their delivery.

An entry that raised alerts carries `alerts` (schema v1 JSON), `alerts_delivered`, while a writer
publishes them `alerts_lease_until`, and after a partial failure `alerts_published` (a string set: the ids of
alerts every sink took, and `<alert id>#<sink>` for each sink that took an alert another sink did not).
The ledger adapters write these attributes with the entry (`outbox_values`), in the same atomic write;
`DynamoDbAlertOutbox` changes them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tagwarden.adapters.dynamodb.items import stored_alerts
from tagwarden.adapters.dynamodb.keys import (
    FINDING_SK,
    Item,
    finding_pk,
    image_pk,
    key,
    move_sk,
    scan_sk,
    tag_pk,
)
from tagwarden.adapters.dynamodb.table import LedgerTable, Values, to_item
from tagwarden.domain.alerts import Alert
from tagwarden.ports import AlertEntry, ConcurrentUpdateError, FindingEntry, RecordedAlerts, TagEntry


def lease_text(moment: datetime) -> str:
    """A lease time as stored: fixed-width UTC (microseconds always written), so that leases compare as text."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"


def outbox_values(alerts: tuple[Alert, ...], lease_until: datetime) -> Values:
    """The outbox attributes of a new entry: its alerts, undelivered, leased to the writer (none if no alerts)."""
    if not alerts:
        return {}
    return {
        "alerts": [alert.to_json() for alert in alerts],
        "alerts_delivered": False,
        "alerts_lease_until": lease_text(lease_until),
    }


def recorded_alerts(item: Mapping[str, Any]) -> RecordedAlerts:
    """The alerts stored on an entry, whether they were delivered, and which were published already."""
    return RecordedAlerts(
        alerts=stored_alerts(item),
        delivered=item.get("alerts_delivered", False),
        published=frozenset(item.get("alerts_published", ())),
    )


def entry_key(entry: AlertEntry) -> Item:
    """The key of the ledger item holding the entry's alerts."""
    if isinstance(entry, TagEntry):
        return key(tag_pk(entry.tag), move_sk(entry.event_key))
    if isinstance(entry, FindingEntry):
        return key(finding_pk(entry.alert_id), FINDING_SK)
    return key(image_pk(entry.image, entry.digest), scan_sk(entry.event_key))


class DynamoDbAlertOutbox:
    """Lease, partial progress and the delivered flag of entries' alerts, by conditional updates."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def claim(self, entry: AlertEntry, now: datetime, until: datetime) -> bool:
        """Succeeds only if the alerts are undelivered and no live lease exists."""
        try:
            self._table.update(
                "UpdateItem claim alert delivery",
                Key=entry_key(entry),
                UpdateExpression="SET alerts_lease_until = :until",
                ConditionExpression=(
                    "alerts_delivered = :false AND "
                    "(attribute_not_exists(alerts_lease_until) OR alerts_lease_until < :now)"
                ),
                ExpressionAttributeValues=to_item(
                    {":until": lease_text(until), ":now": lease_text(now), ":false": False}
                ),
            )
        except ConcurrentUpdateError:
            return False
        return True

    def mark_published(self, entry: AlertEntry, alert_ids: Iterable[str]) -> None:
        """Add the ids to the entry's set of published alerts."""
        ids = set(alert_ids)
        if not ids:
            return
        self._table.update(
            "UpdateItem alerts_published",
            Key=entry_key(entry),
            UpdateExpression="ADD alerts_published :ids",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":ids": ids}),
        )

    def mark_delivered(self, entry: AlertEntry) -> None:
        """Flag the entry's alerts as published, and drop the lease."""
        self._table.update(
            "UpdateItem alerts_delivered",
            Key=entry_key(entry),
            UpdateExpression="SET alerts_delivered = :true REMOVE alerts_lease_until",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":true": True}),
        )

    def release(self, entry: AlertEntry) -> None:
        """Drop the lease (only while the alerts are still undelivered)."""
        try:
            self._table.update(
                "UpdateItem release alert delivery",
                Key=entry_key(entry),
                UpdateExpression="REMOVE alerts_lease_until",
                ConditionExpression="alerts_delivered = :false",
                ExpressionAttributeValues=to_item({":false": False}),
            )
        except ConcurrentUpdateError:
            return
