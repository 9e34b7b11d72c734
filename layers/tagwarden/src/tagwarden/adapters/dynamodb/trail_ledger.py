"""The trail watcher's ledger: repositories' and creation templates' latest settings, and who made tag actions.

| item              | pk                                    | sk                        |
|-------------------|---------------------------------------|---------------------------|
| repo settings     | `REPO#{registry}/{repository}`        | `SETTINGS`                |
| template settings | `TEMPLATE#{registry}/{prefix}`        | `SETTINGS`                |
| pending actor     | `TAG#{registry}/{repository}:{tag}`   | `ACTOR#{action}#{digest}` |

A settings change's alert is recorded as a finding (`FINDING#<alert id>`, see `outbox`), once per CloudTrail
event; the setting item is written only by an event newer than the one it holds, or by the less protective of
two changes in the same second (then marked `order_unknown`, see `tag_protection.decide_settings`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tagwarden.adapters.dynamodb.items import actor_values, finding_values, stored_actor
from tagwarden.adapters.dynamodb.keys import (
    FINDING_SK,
    MOVE_PREFIX,
    digest_key,
    finding_pk,
    key,
    key_text,
    move_sk,
    pending_actor_key,
    settings_key,
    tag_pk,
)
from tagwarden.adapters.dynamodb.outbox import outbox_values, recorded_alerts
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.clock import iso, parse_iso
from tagwarden.domain.alerts import Actor, Alert
from tagwarden.domain.identity import ActorReport, HistoryCandidate
from tagwarden.domain.images import ImageName
from tagwarden.domain.sources import ordering_key
from tagwarden.domain.tag_protection import ProtectionSetting, SettingsChange, SettingsSubject, TagMutability
from tagwarden.domain.tags import TagAction, TagRef
from tagwarden.ports import ConcurrentUpdateError, RecordedSetting, SettingsReading

_KINDS = {SettingsSubject.REPOSITORY: "REPO", SettingsSubject.CREATION_TEMPLATE: "TEMPLATE"}
# Reading outward for a CloudTrail record's history entry: pages of 100 entries, at most 20 pages on each side
# (2,000 entries a side, two minutes: ECR's default PutImage rate quota, 10 a second, allows 1,200; past the
# bound the actor stays unnamed).
_PAGE_SIZE = 100
_MAX_PAGES = 20


def _settings_key(change: SettingsChange) -> dict[str, Any]:
    return settings_key(_KINDS[change.subject], change.registry, change.name)


class DynamoDbTrailLedger:
    """Settings in one read and one transaction; actors with small conditional writes."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def read_settings(self, change: SettingsChange, alert_id: str) -> SettingsReading:
        """The recorded setting and this event's alert (if recorded), in one consistent BatchGetItem."""
        setting_key, alert_key = _settings_key(change), key(finding_pk(alert_id), FINDING_SK)
        items = self._table.batch_get([setting_key, alert_key])
        item, alert = items.get(key_text(setting_key)), items.get(key_text(alert_key))
        recorded = None
        if item is not None:
            setting = ProtectionSetting(TagMutability(item["mutability"]), tuple(item.get("filters", [])))
            recorded = RecordedSetting(
                setting, item["event_key"], bool(item.get("order_unknown", False)), stored_actor(item)
            )
        return SettingsReading(recorded, recorded_alerts(alert) if alert is not None else None)

    def apply_settings(
        self,
        change: SettingsChange,
        expected: RecordedSetting | None,
        record: bool,
        alert: Alert | None,
        lease_until: datetime,
        order_unknown: bool = False,
    ) -> None:
        """One TransactWriteItems: the setting (conditional on the one read), or the mark on the one kept, and
        the alert (once)."""
        now = self._table.clock()
        writes: list[dict[str, Any]] = []
        if not record and order_unknown and expected is not None and not expected.order_unknown:
            # The recorded setting stays, but a same-second change makes its place in time unknown.
            mark = {
                "Key": _settings_key(change),
                "UpdateExpression": "SET order_unknown = :yes",
                "ConditionExpression": "event_key = :read",
                "ExpressionAttributeValues": to_item({":yes": True, ":read": expected.event_key}),
            }
            writes.append({"Update": mark})
        if record:
            item = {
                **_settings_key_values(change),
                "kind": "tag_mutability_settings",
                "subject": change.subject.value,
                "registry": change.registry,
                "name": change.name,
                "mutability": change.setting.mutability.value,
                "filters": list(change.setting.filters),
                "event_key": change.source.key,
                "trail_event_id": change.source.event_id,
                "event_time": iso(change.source.event_time),
                "operation": change.operation,
                "order_unknown": order_unknown,
                "recorded_at": iso(now),
                **actor_values(change.actor),
            }
            put: dict[str, Any] = {"Item": to_item(item)}
            if expected is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                # A late, older event never overwrites a newer setting: the write holds only on what was read.
                put["ConditionExpression"] = "event_key = :read"
                put["ExpressionAttributeValues"] = to_item({":read": expected.event_key})
            writes.append({"Put": put})
        if alert is not None:
            finding = {**finding_values(alert, now), **outbox_values((alert,), lease_until)}
            writes.append({"Put": {"Item": to_item(finding), "ConditionExpression": "attribute_not_exists(pk)"}})
        if writes:
            self._table.transact("TransactWriteItems settings change", writes)

    def history_near(self, report: ActorReport, window: timedelta) -> list[HistoryCandidate]:
        """The entries of the report's action and digest nearest its time, one on each side within `window`.

        A busy tag (a flood of pushes) may hold thousands of entries within the window: each side is read
        outward from the report's time, filtered on action and digest, page by page up to `_MAX_PAGES`, so the
        nearest match is found without reading the whole window, and the cost stays bounded."""
        pk = tag_pk(report.tag)
        at = report.at
        low = f"{MOVE_PREFIX}{ordering_key(at - window, '')}"
        middle = f"{MOVE_PREFIX}{ordering_key(at, '')}"
        high = f"{MOVE_PREFIX}{ordering_key(at + window, '~')}"
        conditions = {"action": report.action.value, "digest": report.digest}
        found = [
            self._table.first_matching(
                pk, start, end, forward=forward, conditions=conditions, page_size=_PAGE_SIZE, max_pages=_MAX_PAGES
            )
            for start, end, forward in ((middle, high, True), (low, middle, False))
        ]
        return [
            HistoryCandidate(
                event_key=item["sk"].removeprefix(MOVE_PREFIX),
                action=TagAction(item["action"]),
                digest=item["digest"],
                event_time=parse_iso(item["event_time"]),
                actor_event_id=item.get("actor_event_id"),
            )
            for item in found
            if item is not None
        ]

    def name_actor(self, tag: TagRef, event_key: str, actor: Actor) -> bool:
        """Set the entry's actor, unless it already names another CloudTrail event's (then False)."""
        try:
            self._table.update(
                "UpdateItem history entry actor",
                Key=key(tag_pk(tag), move_sk(event_key)),
                UpdateExpression="SET actor = :actor, actor_event_id = :id",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(actor_event_id) OR actor_event_id = :id)"
                ),
                ExpressionAttributeValues=to_item({":actor": actor.model_dump_json(), ":id": actor.trail_event_id}),
            )
        except ConcurrentUpdateError:
            return False
        return True

    def tags_of_digest(self, image: ImageName, digest: str) -> tuple[str, ...]:
        """The digest record's `tags` (every tag a push put on it), in a stable order."""
        # BatchGetItem, which the function's role has already (no GetItem grant for one key).
        record_key = digest_key(image, digest)
        item = self._table.batch_get([record_key]).get(key_text(record_key), {})
        return tuple(sorted(item.get("tags", ())))

    def leave_actor(self, report: ActorReport) -> None:
        """Put the actor where the push guard reads it; an older call's actor never replaces a newer one's."""
        values = {
            "pk": tag_pk(report.tag),
            "sk": pending_actor_key(report.tag, report.action.value, report.digest)["sk"]["S"],
            "kind": "pending_actor",
            "trail_key": ordering_key(report.at, report.actor.trail_event_id or ""),
            "recorded_at": iso(self._table.clock()),
            **actor_values(report.actor),
        }
        try:
            self._table.put(
                "PutItem pending actor",
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(pk) OR trail_key <= :key",
                ExpressionAttributeValues=to_item({":key": values["trail_key"]}),
            )
        except ConcurrentUpdateError:
            return


def _settings_key_values(change: SettingsChange) -> dict[str, str]:
    item_key = _settings_key(change)
    return {"pk": item_key["pk"]["S"], "sk": item_key["sk"]["S"]}
