"""Digest records (`IMAGE#...`/`IMAGE`): the writes every adapter makes to them, and their scan states."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tagwarden.adapters.dynamodb.items import optional_scan, tally_values
from tagwarden.adapters.dynamodb.keys import digest_key, key_text
from tagwarden.adapters.dynamodb.table import LedgerTable, Values, to_item
from tagwarden.clock import iso
from tagwarden.domain.findings import FindingTally
from tagwarden.domain.images import ImageName
from tagwarden.domain.indexes import ImageIndex, IndexChild
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import ImageAction, TagAction


def digest_record_update(
    image: ImageName,
    digest: str,
    seen: datetime,
    now: datetime,
    assignments: Iterable[str] = (),
    values: dict[str, Any] | None = None,
    adds: str = "",
) -> dict[str, Any]:
    """An UpdateItem of a digest record that creates it the first time, whichever of a push or a scan comes
    first, with the caller's own `assignments` (SET), `values` (plain) and `adds` (ADD clause)."""
    base = [
        "kind = :kind",
        "registry = :registry",
        "repository = :repository",
        "digest = :digest",
        "first_seen_at = if_not_exists(first_seen_at, :seen)",
        "in_use = if_not_exists(in_use, :no_use)",
        "updated_at = :now",
    ]
    plain = {
        ":kind": "image",
        ":registry": image.registry,
        ":repository": image.repository,
        ":digest": digest,
        ":seen": iso(seen),
        ":now": iso(now),
        ":no_use": {},
        **(values or {}),
    }
    expression = "SET " + ", ".join([*base, *assignments]) + (f" ADD {adds}" if adds else "")
    return {
        "Key": digest_key(image, digest),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": to_item(plain),
    }


def unchanged_scan(update: dict[str, Any], seen: ScanState | None) -> dict[str, Any]:
    """Condition a digest record's update on its scan state still being `seen` (none: still no scan)."""
    update.setdefault("ExpressionAttributeNames", {})["#scan"] = "scan"
    if seen is None:
        update["ConditionExpression"] = "attribute_not_exists(#scan)"
    else:
        update["ConditionExpression"] = "#scan.event_key = :seen_scan"
        update["ExpressionAttributeValues"].update(to_item({":seen_scan": seen.event_key or ""}))
    return update


def replace_tally(image: ImageName, digest: str, seen: datetime, now: datetime, tally: FindingTally) -> dict[str, Any]:
    """An UpdateItem that sets a digest record's Inspector finding tally (creating the record if needed)."""
    update = digest_record_update(
        image, digest, seen, now, assignments=["#findings = :tally"], values={":tally": tally_values(tally)}
    )
    update.setdefault("ExpressionAttributeNames", {})["#findings"] = "findings"
    return update


def unchanged_tally(update: dict[str, Any], seen: FindingTally | None) -> dict[str, Any]:
    """Also condition a digest record's update on its finding tally still being `seen` (none: still none)."""
    update.setdefault("ExpressionAttributeNames", {})["#findings"] = "findings"
    if seen is None:
        condition = "attribute_not_exists(#findings)"
    else:
        condition = "#findings.version = :seen_tally"
        update["ExpressionAttributeValues"].update(to_item({":seen_tally": seen.version}))
    existing = update.get("ConditionExpression")
    update["ConditionExpression"] = f"({existing}) AND {condition}" if existing else condition
    return update


def image_action_update(action: ImageAction, now: datetime) -> dict[str, Any]:
    """A push or delete noted on the digest record; a tagged push adds the tag to the digest's known tags."""
    pushed = action.action is TagAction.PUSH
    adds = "tags :tags" if action.tag is not None and pushed else ""
    return digest_record_update(
        action.image,
        action.digest,
        action.source.event_time,
        now,
        assignments=["last_pushed_at = :seen" if pushed else "deleted_at = :seen"],
        values={":tags": {action.tag}} if adds else None,
        adds=adds,
    )


def scan_states(table: LedgerTable, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
    """The latest scan of each digest that has one, batched."""
    wanted = {digest: digest_key(image, digest) for digest in dict.fromkeys(digests)}
    items = table.batch_get(list(wanted.values()))
    states: dict[str, ScanState] = {}
    for digest, item_key in wanted.items():
        scan = optional_scan(items.get(key_text(item_key), {}))
        if scan is not None:
            states[digest] = scan
    return states


def index_values(index: ImageIndex) -> list[Values]:
    """An index's entries as stored on its digest record (`children`, a list of maps, in the index's order)."""
    return [
        {"digest": child.digest, "platform": child.platform, "attestation": child.attestation}
        for child in index.children
    ]


def stored_index(digest: str, item: Mapping[str, Any]) -> ImageIndex | None:
    """The index a digest record holds, if the record is an index's."""
    children = item.get("children")
    if children is None:
        return None
    return ImageIndex(
        digest,
        tuple(IndexChild(c["digest"], c.get("platform", ""), bool(c.get("attestation", False))) for c in children),
    )


def stored_derivation(item: Mapping[str, Any] | None) -> int | None:
    """An index record's derivation counter, if a derived state was ever written (see `derivation_update`)."""
    return int(item["derivation"]) if item and "derivation" in item else None


def derivation_update(update: dict[str, Any], derivation: int | None) -> dict[str, Any]:
    """Bump an index record's derivation counter, conditioned on it being as read: every writer of an index's
    derived scan state (a push of the index, a scan of any of its children) goes through this one counter."""
    update["UpdateExpression"] = update["UpdateExpression"].replace("SET ", "SET derivation = :derivation, ", 1)
    values = {":derivation": (derivation or 0) + 1}
    if derivation is None:
        update["ConditionExpression"] = "attribute_not_exists(derivation)"
    else:
        update["ConditionExpression"] = "derivation = :derivation_read"
        values[":derivation_read"] = derivation
    update["ExpressionAttributeValues"].update(to_item(values))
    return update


def parent_update(image: ImageName, child: str, parent: str, seen: ScanState | None, now: datetime) -> dict[str, Any]:
    """A child of a pushed index learns its parent (created if its own push was not seen yet), provided its
    scan state is still the one the index's derived state was computed from."""
    update = digest_record_update(image, child, now, now, values={":parent": {parent}}, adds="parents :parent")
    return unchanged_scan(update, seen)


def unchanged_parents(update: dict[str, Any], parents: int) -> dict[str, Any]:
    """Also condition a digest record's update on it holding the `parents` read (they are only ever added):
    a scan that raced an index push learning this child must read again, or the index misses the scan."""
    if parents:
        clause = "size(parents) = :parents_read"
        update["ExpressionAttributeValues"].update(to_item({":parents_read": parents}))
    else:
        clause = "attribute_not_exists(parents)"
    existing = update.get("ConditionExpression")
    update["ConditionExpression"] = f"({existing}) AND {clause}" if existing else clause
    return update
