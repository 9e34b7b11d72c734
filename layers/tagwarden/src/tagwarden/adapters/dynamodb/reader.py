"""The ledger's read side for people, CI gates and the backfill: timelines, pointers, digests, scans."""

from __future__ import annotations

from collections.abc import Iterable

from tagwarden.adapters.dynamodb.digests import scan_states, stored_index
from tagwarden.adapters.dynamodb.items import optional_scan, stored_move, stored_pointer, stored_scan
from tagwarden.adapters.dynamodb.keys import (
    MOVE_PREFIX,
    SCAN_PREFIX,
    digest_key,
    image_pk,
    key_text,
    pointer_key,
    tag_pk,
)
from tagwarden.adapters.dynamodb.table import LedgerTable
from tagwarden.domain.images import ImageName
from tagwarden.domain.indexes import ImageIndex
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import TagMove, TagPointer, TagRef


class DynamoDbLedgerReader:
    """Read-only, consistent reads of the ledger."""

    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def pointer(self, tag: TagRef) -> TagPointer | None:
        """The tag's pointer, if the ledger has seen the tag."""
        item = self._table.get(pointer_key(tag), "GetItem pointer")
        return stored_pointer(item) if item else None

    def history(self, tag: TagRef) -> list[TagMove]:
        """The tag's whole history, oldest first."""
        return [stored_move(item) for item in self._table.query_prefix(tag_pk(tag), MOVE_PREFIX, "Query history")]

    def scan_states(self, image: ImageName, digests: Iterable[str]) -> dict[str, ScanState]:
        """Latest scan per digest, batched."""
        return scan_states(self._table, image, digests)

    def digest_record(self, image: ImageName, digest: str) -> tuple[frozenset[str], ScanState | None] | None:
        """None for a digest the ledger never saw; else the tags ever pushed to it and its latest scan."""
        item = self._table.get(digest_key(image, digest), "GetItem digest record")
        if item is None:
            return None
        return frozenset(item.get("tags", ())), optional_scan(item)

    def scan_history(self, image: ImageName, digest: str) -> list[ScanState]:
        """Every scan recorded for the digest (its `SCAN#` entries), oldest first."""
        items = self._table.query_prefix(image_pk(image, digest), SCAN_PREFIX, "Query scan history")
        return [stored_scan(item["scan"]) for item in items if "scan" in item]

    def indexes(self, image: ImageName, digests: Iterable[str]) -> dict[str, ImageIndex]:
        """The image indexes among these digests, with their platform and attestation manifests, batched."""
        wanted = {digest: digest_key(image, digest) for digest in dict.fromkeys(digests)}
        items = self._table.batch_get(list(wanted.values()))
        found: dict[str, ImageIndex] = {}
        for digest, item_key in wanted.items():
            item = items.get(key_text(item_key))
            index = stored_index(digest, item) if item is not None else None
            if index is not None:
                found[digest] = index
        return found
