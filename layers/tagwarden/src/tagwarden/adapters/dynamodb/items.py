"""Domain objects as ledger items and back: the attribute names and shapes stored in the table.

Every function here speaks plain values (see `table.to_item`/`from_item`); keys live in `keys`, the alert
outbox's attributes in `outbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.keys import (
    FINDING_SK,
    MOVE_PREFIX,
    POINTER_SK,
    ROLLOUTS_SK,
    finding_pk,
    finding_sk,
    image_pk,
    move_sk,
    scan_sk,
    tag_pk,
    workload_pk,
)
from tagwarden.adapters.dynamodb.table import Values
from tagwarden.clock import iso, parse_iso
from tagwarden.domain.alerts import Actor, Alert, RevertStatus
from tagwarden.domain.findings import FindingReported, FindingStatus, FindingTally, KnownFinding
from tagwarden.domain.images import ImageName
from tagwarden.domain.revert import PendingRevert, RevertRequest
from tagwarden.domain.scans import FindingSeverity, ScanCompleted, ScannedDigest, ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import TagAction, TagMove, TagPointer, TagRef
from tagwarden.domain.workloads import Rollouts


def scan_values(scan: ScanState) -> Values:
    """A scan state as stored (a map; `to_item` drops only top-level Nones, so absent fields are left out here)."""
    values: Values = {
        "status": scan.status.value,
        "scanned_at": iso(scan.scanned_at),
        "scanner": scan.scanner,
        "finding_counts": dict(scan.finding_counts),
    }
    if scan.verdict is not None:
        values["verdict"] = scan.verdict.value
    if scan.event_key is not None:
        values["event_key"] = scan.event_key
    if scan.failing_since is not None:
        values["failing_since"] = scan.failing_since
    if scan.failing_recorded_at is not None:
        values["failing_recorded_at"] = iso(scan.failing_recorded_at)
    return values


def stored_scan(values: Mapping[str, Any]) -> ScanState:
    """Inverse of `scan_values`."""
    return ScanState(
        status=ScanStatus(values["status"]),
        scanned_at=parse_iso(values["scanned_at"]),
        scanner=values["scanner"],
        verdict=Verdict(values["verdict"]) if "verdict" in values else None,
        finding_counts={name: int(count) for name, count in values.get("finding_counts", {}).items()},
        event_key=values.get("event_key"),
        failing_since=values.get("failing_since"),
        failing_recorded_at=parse_iso(values["failing_recorded_at"]) if "failing_recorded_at" in values else None,
    )


def optional_scan(item: Mapping[str, Any]) -> ScanState | None:
    """The `scan` attribute of an item (pointer, digest record or scan entry), if it has one."""
    return stored_scan(item["scan"]) if "scan" in item else None


def mark_values(mark: ScannedDigest) -> Values:
    """A tag's last scanned digest as stored (a map)."""
    return {"digest": mark.digest, "scanned_at": iso(mark.scanned_at)}


def usage_values(in_use: Mapping[str, datetime]) -> Values:
    """Usage sites (`cluster/namespace/kind/name` -> last seen) as stored (a map)."""
    return {location: iso(seen) for location, seen in in_use.items()}


def stored_usage(item: Mapping[str, Any]) -> dict[str, datetime]:
    """The `in_use` map of an item, as usage sites."""
    return {location: parse_iso(seen) for location, seen in item.get("in_use", {}).items()}


def pointer_values(tag: TagRef, pointer: TagPointer, source: SourceEvent, now: datetime) -> Values:
    """The tag's pointer item."""
    scan = pointer.scan
    mark = pointer.last_scanned
    return {
        "pk": tag_pk(tag),
        "sk": POINTER_SK,
        "kind": "tag_pointer",
        "registry": tag.image.registry,
        "repository": tag.image.repository,
        "tag": tag.tag,
        "digest": pointer.digest,
        "last_digest": pointer.last_digest,
        "event_key": pointer.event_key,
        "event_id": source.event_id,
        "event_time": iso(source.event_time),
        "version": pointer.version,
        "updated_at": iso(now),
        "scan": scan_values(scan) if scan is not None else None,
        "last_scanned": mark_values(mark) if mark is not None else None,
        "in_use": usage_values(pointer.in_use),
        "revert_to": pointer.revert_to,
        "revert_request": pointer.revert_request,
        "revert_settled_at": iso(pointer.revert_settled_at) if pointer.revert_settled_at is not None else None,
    }


def stored_pointer(item: Mapping[str, Any]) -> TagPointer:
    """Inverse of `pointer_values`."""
    mark = item.get("last_scanned")
    return TagPointer(
        digest=item.get("digest"),
        last_digest=item["last_digest"],
        event_key=item["event_key"],
        version=int(item["version"]),
        scan=optional_scan(item),
        last_scanned=ScannedDigest(mark["digest"], parse_iso(mark["scanned_at"])) if mark else None,
        in_use=stored_usage(item),
        revert_to=item.get("revert_to"),
        revert_request=item.get("revert_request"),
        revert_settled_at=parse_iso(item["revert_settled_at"]) if item.get("revert_settled_at") else None,
    )


def move_values(tag: TagRef, move: TagMove, now: datetime) -> Values:
    """A history entry item (without its alerts: see `outbox.outbox_values`)."""
    return {
        "pk": tag_pk(tag),
        "sk": move_sk(move.source.key),
        "kind": "tag_move",
        "action": move.action.value,
        "digest": move.digest,
        "event_id": move.source.event_id,
        "event_time": iso(move.source.event_time),
        "late": move.late,
        "move_alerted": move.alerted,
        "recorded_at": iso(now),
        "previous_digest": move.previous_digest,
        "previous_key": move.previous_key,
        "account": move.source.account,
        "region": move.source.region,
        **revert_values(move),
        **actor_values(move.actor),
    }


def revert_values(move: TagMove) -> Values:
    """An entry's part in an opt-in revert (domain.revert): the target outstanding, the request and its state
    (`revert_status`, `revert_target`, later `revert_detail`), or that this push was the revert."""
    values: Values = {"revert_to": move.revert_to}
    if move.revert_requested:
        values |= {"revert_status": RevertStatus.PENDING.value, "revert_target": move.revert_to}
    if move.reverts:
        values["reverts"] = True
    return values


def stored_pending_revert(tag: TagRef, item: Mapping[str, Any]) -> PendingRevert | None:
    """The revert an entry asked for, with its state; None for an entry that asked for none."""
    if "revert_status" not in item:
        return None
    return PendingRevert(
        request=RevertRequest(tag, item["sk"].removeprefix(MOVE_PREFIX)),
        target=item["revert_target"],
        overwriting=item["digest"],
        status=RevertStatus(item["revert_status"]),
        detail=item.get("revert_detail"),
    )


def actor_values(actor: Actor | None) -> Values:
    """Who made a call, as stored on a history entry or a pending actor item: the Actor as JSON, and its
    CloudTrail event id apart, for conditions."""
    if actor is None:
        return {}
    return {"actor": actor.model_dump_json(), "actor_event_id": actor.trail_event_id}


def stored_actor(item: Mapping[str, Any]) -> Actor | None:
    """Inverse of `actor_values`."""
    text = item.get("actor")
    return Actor.model_validate_json(text) if text else None


def stored_move(item: Mapping[str, Any]) -> TagMove:
    """Inverse of `move_values`, with the alerts the entry raised."""
    return TagMove(
        action=TagAction(item["action"]),
        digest=item["digest"],
        previous_digest=item.get("previous_digest"),
        source=SourceEvent(
            event_id=item["event_id"],
            event_time=parse_iso(item["event_time"]),
            account=item.get("account"),
            region=item.get("region"),
        ),
        late=item.get("late", False),
        alerts=stored_alerts(item),
        previous_key=item.get("previous_key"),
        alerted=item.get("move_alerted", False),
        revert_to=item.get("revert_to"),
        revert_requested="revert_status" in item,
        reverts=item.get("reverts", False),
        revert_status=RevertStatus(item["revert_status"]) if "revert_status" in item else None,
        actor=stored_actor(item),
    )


def stored_alerts(item: Mapping[str, Any]) -> tuple[Alert, ...]:
    """The alerts stored on an entry (schema v1 JSON, one string each)."""
    return tuple(Alert.model_validate_json(text) for text in item.get("alerts", []))


def scan_entry_values(scan: ScanCompleted, state: ScanState, now: datetime) -> Values:
    """A scan history entry: what the scanner reported (its alerts: see `outbox.outbox_values`)."""
    return {
        "pk": image_pk(scan.image, scan.digest),
        "sk": scan_sk(scan.source.key),
        "kind": "scan",
        "digest": scan.digest,
        "event_id": scan.source.event_id,
        "event_time": iso(scan.source.event_time),
        "scan": scan_values(state),
        "tags_reported": list(scan.tags),
        "recorded_at": iso(now),
        "reported_total": scan.reported_total,
    }


def tally_values(tally: FindingTally) -> Values:
    """A digest's Inspector finding tally as stored (the `findings` map of its digest record)."""
    values: Values = {
        "active": dict(tally.active),
        "closed": dict(tally.closed),
        "unrated": tally.unrated,
        "version": tally.version,
    }
    if tally.summary is not None:
        values["summary"] = dict(tally.summary)
    return values


def stored_tally(item: Mapping[str, Any]) -> FindingTally | None:
    """The `findings` map of a digest record, if it has one."""
    values = item.get("findings")
    if values is None:
        return None
    summary = values.get("summary")
    return FindingTally(
        active={name: int(count) for name, count in values.get("active", {}).items()},
        closed={name: int(count) for name, count in values.get("closed", {}).items()},
        summary={name: int(count) for name, count in summary.items()} if summary is not None else None,
        unrated=int(values.get("unrated", 0)),
        version=int(values.get("version", 0)),
    )


def known_finding_values(report: FindingReported, revision: str | None, now: datetime) -> Values:
    """One Inspector finding of a digest, as its newest event left it."""
    known = report.known
    return {
        "pk": image_pk(report.image, report.digest),
        "sk": finding_sk(report.finding_id),
        "kind": "inspector_finding",
        "finding_arn": report.finding_arn,
        "title": report.title or None,
        "severity": known.severity.value,
        "status": known.status.value,
        "event_key": known.event_key,
        "event_id": report.source.event_id,
        # The scan history entry this event wrote (its alerts, for a repeated delivery), if it changed the state.
        "revision": revision,
        "recorded_at": iso(now),
    }


def stored_finding(item: Mapping[str, Any]) -> KnownFinding:
    """Inverse of `known_finding_values` (what decides the next event)."""
    return KnownFinding(FindingSeverity(item["severity"]), FindingStatus(item["status"]), item["event_key"])


def finding_entry_values(report: FindingReported, state: ScanState, now: datetime) -> Values:
    """A scan history entry for a finding event that changed the digest's scan state (at the state's key)."""
    assert state.event_key is not None
    return {
        "pk": image_pk(report.image, report.digest),
        "sk": scan_sk(state.event_key),
        "kind": "scan",
        "digest": report.digest,
        "event_id": report.source.event_id,
        "event_time": iso(report.source.event_time),
        "scan": scan_values(state),
        "tags_reported": list(report.tags),
        "recorded_at": iso(now),
        "finding_arn": report.finding_arn,
        "finding_status": report.status.value,
        "finding_severity": report.severity.value,
    }


def rollouts_values(location: str, rollouts: Rollouts, version: int, now: datetime) -> Values:
    """A workload's rollouts: each content recently rolled out there and when its latest rollout began
    (`contents`, the first format's attribute, unchanged), and per content that has them (`history`) its
    earlier kept starts, kept spec writes, the starts kubelet lines made and the kubelet-made starts spec
    writes replaced (`aliases`, start -> replaced start). One map entry per content, so its name (~130
    characters) is stored twice at most."""
    history: dict[str, dict[str, Any]] = {}
    for content in rollouts.starts:
        entry: dict[str, Any] = {
            name: [iso(moment) for moment in times]
            for name, times in (
                ("earlier", rollouts.earlier.get(content, ())),
                ("introduced", rollouts.introductions.get(content, ())),
                ("provisional", rollouts.provisional.get(content, ())),
            )
            if times
        }
        aliases = rollouts.aliases.get(content, {})
        if aliases:
            entry["aliases"] = {iso(start): iso(alias) for start, alias in aliases.items()}
        if entry:
            history[content] = entry
    return {
        "pk": workload_pk(location),
        "sk": ROLLOUTS_SK,
        "kind": "workload_rollouts",
        "location": location,
        "contents": {content: iso(start) for content, start in rollouts.starts.items()},
        "history": history,
        "version": version,
        "updated_at": iso(now),
    }


def stored_rollouts(item: Mapping[str, Any]) -> Rollouts:
    """Inverse of `rollouts_values`; an item of the first format (`contents` only) reads with no earlier
    starts, spec writes or kubelet-made starts."""
    starts = {content: parse_iso(start) for content, start in item.get("contents", {}).items()}
    kept: dict[str, dict[str, tuple[datetime, ...]]] = {"earlier": {}, "introduced": {}, "provisional": {}}
    aliases: dict[str, dict[datetime, datetime]] = {}
    for content, entry in item.get("history", {}).items():
        if content not in starts:
            continue
        for name, times in entry.items():
            if name in kept and times:
                kept[name][content] = tuple(parse_iso(moment) for moment in times)
        if entry.get("aliases"):
            aliases[content] = {parse_iso(start): parse_iso(alias) for start, alias in entry["aliases"].items()}
    version = int(item.get("version", 0))
    return Rollouts(starts, version, kept["earlier"], kept["introduced"], kept["provisional"], aliases)


def derived_entry_values(image: ImageName, index: str, state: ScanState, source: SourceEvent, now: datetime) -> Values:
    """An image index's scan history entry: the state derived from its platforms' scans when the event
    `source` (a scan of one of them, or the index's push) changed it. Keyed by the derived state's own event
    key (its latest platform scan's), so a re-derivation from the same scans replaces it."""
    assert state.event_key is not None
    return {
        "pk": image_pk(image, index),
        "sk": scan_sk(state.event_key),
        "kind": "scan",
        "digest": index,
        "event_id": source.event_id,
        "event_time": iso(source.event_time),
        "scan": scan_values(state),
        "derived": True,
        "tags_reported": [],
        "recorded_at": iso(now),
    }


def finding_values(alert: Alert, now: datetime) -> Values:
    """A deployment finding: recorded once (its alert: see `outbox.outbox_values`)."""
    return {
        "pk": finding_pk(alert.alert_id),
        "sk": FINDING_SK,
        "kind": "finding",
        "alert_type": alert.type.value,
        "registry": alert.registry,
        "repository": alert.repository,
        "first_seen_at": iso(alert.event_time),
        "recorded_at": iso(now),
    }
