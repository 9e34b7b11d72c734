"""The admission webhook's ledger read: one consistent BatchGetItem of tag pointers and digest records.

A tag's pointer already carries the scan state of the digest it names (the push guard and the scan
recorder keep it there, derived for image indexes), so a tag costs one key and a digest one key. Nothing
is cached: where a tag points is read at every review (a cache keyed by tag is the hole Tagwarden closes),
and a digest's verdict too, so a rescan counts from the next review on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from tagwarden.adapters.dynamodb.items import optional_scan, stored_pointer
from tagwarden.adapters.dynamodb.keys import Item, digest_key, key_text, pointer_key
from tagwarden.adapters.dynamodb.table import BATCH_GET_LIMIT, LedgerTable, from_item, ledger_errors
from tagwarden.domain.admission import AdmissionView
from tagwarden.domain.deployments import DigestKey
from tagwarden.domain.scans import ScanState
from tagwarden.domain.tags import TagPointer, TagRef
from tagwarden.ports import LedgerUnavailableError

# Only what a decision reads: a pointer's usage map (up to 50 workloads) stays in the table.
_PROJECTION = "pk, sk, digest, last_digest, event_key, #version, #scan, last_scanned"
_NAMES = {"#version": "version", "#scan": "scan"}
# Pod specs have at most a few dozen containers; more distinct images than one request holds is refused.
MAX_KEYS = BATCH_GET_LIMIT


class DynamoDbAdmissionLedger:
    """Reads for admission decisions; the webhook's role may read the ledger and nothing else."""

    def __init__(self, table: LedgerTable, budget_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = table
        self._budget = budget_seconds
        self._clock = clock

    def read_admission_view(self, tags: Iterable[TagRef], digests: Iterable[DigestKey]) -> AdmissionView:
        """One consistent BatchGetItem; keys DynamoDB leaves unprocessed (throttling) are asked once more when
        the first request left room for it, then the ledger counts as unavailable: the webhook's time budget
        has no room for backoff."""
        tag_keys = {tag: pointer_key(tag) for tag in tags}
        digest_keys = {digest: digest_key(*digest) for digest in digests}
        wanted = [*tag_keys.values(), *digest_keys.values()]
        if len(wanted) > MAX_KEYS:
            raise LedgerUnavailableError(f"{len(wanted)} distinct images in one object: more than one read holds")
        items = self._read(wanted) if wanted else {}
        pointers: dict[TagRef, TagPointer | None] = {}
        for tag, item_key in tag_keys.items():
            pointer = items.get(key_text(item_key))
            pointers[tag] = stored_pointer(pointer) if pointer else None
        records: dict[DigestKey, ScanState | None] = {}
        for digest, item_key in digest_keys.items():
            record = items.get(key_text(item_key))
            if record is not None:
                records[digest] = optional_scan(record)
        return AdmissionView(pointers, records)

    def _read(self, keys: list[Item]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        pending = keys
        started = self._clock()
        for attempt in range(2):
            # One deadline for both requests: the second may take as long as a first (1.5 budgets + 1 s, see
            # aws_clients.admission_config), so it is made only if the first took under a quarter budget.
            if attempt and self._clock() - started > self._budget / 4:
                break
            request: Any = {
                self._table.name: {
                    "Keys": pending,
                    "ConsistentRead": True,
                    "ProjectionExpression": _PROJECTION,
                    "ExpressionAttributeNames": _NAMES,
                }
            }
            with ledger_errors("BatchGetItem admission"):
                response = self._table.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self._table.name, []):
                found[key_text(item)] = from_item(item)
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table.name)
            if not unprocessed:
                return found
            pending = list(unprocessed["Keys"])
        raise LedgerUnavailableError(f"BatchGetItem admission: {len(pending)} keys still unprocessed (throttled)")
