"""Ledger items: how tag pointers, tag histories and digest records are stored in the one DynamoDB table.

| item           | pk                                 | sk                    |
|----------------|------------------------------------|-----------------------|
| tag pointer    | `TAG#{registry}/{repository}:{tag}`  | `POINTER`             |
| tag history    | `TAG#{registry}/{repository}:{tag}`  | `MOVE#{time}#{event}` |
| digest record  | `IMAGE#{registry}/{repository}@{digest}` | `IMAGE`          |
| scan history   | `IMAGE#{registry}/{repository}@{digest}` | `SCAN#{time}#{event}` |
| finding        | `FINDING#{alert_id}`                 | `FINDING`             |

Names, tags and digests are validated before they reach a key, so `#`, `:` and `@` cannot be forged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tagwarden.domain.alerts import Alert
from tagwarden.domain.images import ImageName
from tagwarden.domain.scans import ScanCompleted, ScannedDigest, ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import TagAction, TagMove, TagPointer, TagRef
from tagwarden.ports import RecordedAlerts

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, "AttributeValueTypeDef"]

POINTER_SK = "POINTER"
MOVE_PREFIX = "MOVE#"
# The first string after every `MOVE#...` key: `$` follows `#` in ASCII.
MOVE_UPPER_BOUND = "MOVE$"
IMAGE_SK = "IMAGE"
SCAN_PREFIX = "SCAN#"
FINDING_SK = "FINDING"


def tag_pk(tag: TagRef) -> str:
    """Partition of a tag: its pointer and its whole history."""
    return f"TAG#{tag}"


def image_pk(image: ImageName, digest: str) -> str:
    """Partition of one digest in one repository."""
    return f"IMAGE#{image}@{digest}"


def move_sk(event_key: str) -> str:
    """Sort key of a history entry: time order, then event id."""
    return f"{MOVE_PREFIX}{event_key}"


def finding_pk(alert_id: str) -> str:
    """Partition of one deployment finding (alert ids are hex digests, safe in a key)."""
    return f"FINDING#{alert_id}"


def scan_sk(event_key: str) -> str:
    """Sort key of a scan history entry."""
    return f"{SCAN_PREFIX}{event_key}"


def key(pk: str, sk: str) -> Item:
    """A primary key in DynamoDB's attribute-value form."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def iso(moment: datetime) -> str:
    """UTC timestamp text as stored in the ledger."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Inverse of `iso`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def scan_to_attr(scan: ScanState) -> AttributeValueTypeDef:
    """A scan state as a DynamoDB map."""
    value: dict[str, AttributeValueTypeDef] = {
        "status": {"S": scan.status.value},
        "scanned_at": {"S": iso(scan.scanned_at)},
        "scanner": {"S": scan.scanner},
        "finding_counts": {"M": {name: {"N": str(count)} for name, count in scan.finding_counts.items()}},
    }
    if scan.verdict is not None:
        value["verdict"] = {"S": scan.verdict.value}
    if scan.event_key is not None:
        value["event_key"] = {"S": scan.event_key}
    return {"M": value}


def scan_from_attr(attr: Any) -> ScanState:
    """Inverse of `scan_to_attr`."""
    value = attr["M"]
    return ScanState(
        status=ScanStatus(value["status"]["S"]),
        scanned_at=parse_iso(value["scanned_at"]["S"]),
        scanner=value["scanner"]["S"],
        verdict=Verdict(value["verdict"]["S"]) if "verdict" in value else None,
        finding_counts={name: int(count["N"]) for name, count in value.get("finding_counts", {"M": {}})["M"].items()},
        event_key=value["event_key"]["S"] if "event_key" in value else None,
    )


def pointer_item(tag: TagRef, pointer: TagPointer, source: SourceEvent, now: datetime) -> Item:
    """The tag's pointer item."""
    item: Item = {
        **key(tag_pk(tag), POINTER_SK),
        "kind": {"S": "tag_pointer"},
        "registry": {"S": tag.image.registry},
        "repository": {"S": tag.image.repository},
        "tag": {"S": tag.tag},
        "last_digest": {"S": pointer.last_digest},
        "event_key": {"S": pointer.event_key},
        "event_id": {"S": source.event_id},
        "event_time": {"S": iso(source.event_time)},
        "version": {"N": str(pointer.version)},
        "updated_at": {"S": iso(now)},
    }
    if pointer.digest is not None:
        item["digest"] = {"S": pointer.digest}
    if pointer.scan is not None:
        item["scan"] = scan_to_attr(pointer.scan)
    if pointer.last_scanned is not None:
        item["last_scanned"] = {
            "M": {
                "digest": {"S": pointer.last_scanned.digest},
                "scanned_at": {"S": iso(pointer.last_scanned.scanned_at)},
            }
        }
    item["in_use"] = in_use_to_attr(pointer.in_use)
    return item


def in_use_to_attr(in_use: Mapping[str, datetime]) -> AttributeValueTypeDef:
    """Usage sites (`cluster/namespace/kind/name` -> last seen) as a DynamoDB map."""
    return {"M": {location: {"S": iso(seen)} for location, seen in in_use.items()}}


def in_use_from_item(item: Any) -> dict[str, datetime]:
    """Inverse of `in_use_to_attr`, on the item holding it."""
    return {location: parse_iso(seen["S"]) for location, seen in item.get("in_use", {"M": {}})["M"].items()}


def pointer_from_item(item: Any) -> TagPointer:
    """Inverse of `pointer_item`."""
    return TagPointer(
        digest=item["digest"]["S"] if "digest" in item else None,
        last_digest=item["last_digest"]["S"],
        event_key=item["event_key"]["S"],
        version=int(item["version"]["N"]),
        scan=scan_from_attr(item["scan"]) if "scan" in item else None,
        last_scanned=(
            ScannedDigest(
                item["last_scanned"]["M"]["digest"]["S"], parse_iso(item["last_scanned"]["M"]["scanned_at"]["S"])
            )
            if "last_scanned" in item
            else None
        ),
        in_use=in_use_from_item(item),
    )


def move_item(tag: TagRef, move: TagMove, now: datetime) -> Item:
    """A history entry item."""
    item: Item = {
        **key(tag_pk(tag), move_sk(move.source.key)),
        "kind": {"S": "tag_move"},
        "action": {"S": move.action.value},
        "digest": {"S": move.digest},
        "event_id": {"S": move.source.event_id},
        "event_time": {"S": iso(move.source.event_time)},
        "late": {"BOOL": move.late},
        "move_alerted": {"BOOL": move.alerted},
        "recorded_at": {"S": iso(now)},
    }
    if move.previous_digest is not None:
        item["previous_digest"] = {"S": move.previous_digest}
    if move.previous_key is not None:
        item["previous_key"] = {"S": move.previous_key}
    if move.source.account is not None:
        item["account"] = {"S": move.source.account}
    if move.source.region is not None:
        item["region"] = {"S": move.source.region}
    item.update(alert_attributes(move.alerts, move.alerts_delivered, move.alerts_lease_until))
    return item


def alert_attributes(alerts: tuple[Alert, ...], delivered: bool, lease_until: datetime | None) -> Item:
    """The outbox attributes of an entry that raised alerts (none for an entry that raised nothing)."""
    if not alerts:
        return {}
    item: Item = {
        "alerts": {"L": [{"S": alert.to_json()} for alert in alerts]},
        "alerts_delivered": {"BOOL": delivered},
    }
    if lease_until is not None:
        item["alerts_lease_until"] = {"S": iso(lease_until)}
    return item


def alerts_from_item(item: Any) -> RecordedAlerts:
    """The alerts stored on an entry, whether they were delivered, and which were published already."""
    return RecordedAlerts(
        alerts=tuple(Alert.model_validate_json(entry["S"]) for entry in item.get("alerts", {"L": []})["L"]),
        delivered=item.get("alerts_delivered", {"BOOL": False})["BOOL"],
        published=frozenset(item.get("alerts_published", {"SS": []})["SS"]),
    )


def finding_item(alert: Alert, lease_until: datetime, now: datetime) -> Item:
    """A deployment finding: recorded once, with its alert in the outbox."""
    item: Item = {
        **key(finding_pk(alert.alert_id), FINDING_SK),
        "kind": {"S": "finding"},
        "alert_type": {"S": alert.type.value},
        "registry": {"S": alert.registry},
        "repository": {"S": alert.repository},
        "first_seen_at": {"S": iso(alert.event_time)},
        "recorded_at": {"S": iso(now)},
    }
    item.update(alert_attributes((alert,), False, lease_until))
    return item


def scan_entry_item(
    scan: ScanCompleted, state: ScanState, alerts: tuple[Alert, ...], lease_until: datetime | None, now: datetime
) -> Item:
    """A scan history entry: what the scanner reported, and the alerts it raised."""
    item: Item = {
        **key(image_pk(scan.image, scan.digest), scan_sk(scan.source.key)),
        "kind": {"S": "scan"},
        "digest": {"S": scan.digest},
        "event_id": {"S": scan.source.event_id},
        "event_time": {"S": iso(scan.source.event_time)},
        "scan": scan_to_attr(state),
        "tags_reported": {"L": [{"S": tag} for tag in scan.tags]},
        "recorded_at": {"S": iso(now)},
    }
    if scan.reported_total is not None:
        item["reported_total"] = {"N": str(scan.reported_total)}
    item.update(alert_attributes(alerts, False, lease_until))
    return item


def move_from_item(item: Any) -> TagMove:
    """Inverse of `move_item`."""
    recorded = alerts_from_item(item)
    return TagMove(
        action=TagAction(item["action"]["S"]),
        digest=item["digest"]["S"],
        previous_digest=item["previous_digest"]["S"] if "previous_digest" in item else None,
        source=SourceEvent(
            event_id=item["event_id"]["S"],
            event_time=parse_iso(item["event_time"]["S"]),
            account=item["account"]["S"] if "account" in item else None,
            region=item["region"]["S"] if "region" in item else None,
        ),
        late=item.get("late", {"BOOL": False})["BOOL"],
        alerts=recorded.alerts,
        alerts_delivered=recorded.delivered,
        alerts_published=recorded.published,
        previous_key=item["previous_key"]["S"] if "previous_key" in item else None,
        alerted=item.get("move_alerted", {"BOOL": False})["BOOL"],
        alerts_lease_until=parse_iso(item["alerts_lease_until"]["S"]) if "alerts_lease_until" in item else None,
    )
