"""One table client for every ledger adapter: values through boto3's own (de)serializers, errors as the core's.

Adapters build their keys and conditional expressions explicitly (the conditions are the ledger's
correctness); values go in and out as plain Python through `TypeSerializer`/`TypeDeserializer`, with
numbers coming back as `Decimal` and string sets as `set`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from tagwarden.adapters.dynamodb.keys import Item, key_text
from tagwarden.clock import utcnow
from tagwarden.ports import ConcurrentUpdateError, LedgerUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT = 100
MAX_TRANSACTION_ITEMS = 100
UNPROCESSED_RETRIES = 6
# Conflicts a transaction can lose that mean "read again", not "the ledger is broken".
_RETRYABLE_CANCELLATIONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

Values = dict[str, Any]
"""An item's attributes as plain Python values."""


def to_item(values: Mapping[str, Any]) -> Item:
    """Plain values as DynamoDB attribute values; None means "no such attribute"."""
    return {name: _SERIALIZER.serialize(value) for name, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> Values:
    """DynamoDB attribute values as plain values."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


@contextmanager
def ledger_errors(operation: str) -> Iterator[None]:
    """AWS errors become the core's own: a lost conditional race, or an unavailable ledger."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConcurrentUpdateError(f"{operation}: condition no longer holds") from error
        if code == "TransactionCanceledException":
            reasons = {r.get("Code", "None") for r in error.response.get("CancellationReasons", [])}
            if reasons - {"None"} <= _RETRYABLE_CANCELLATIONS:
                raise ConcurrentUpdateError(f"{operation}: {sorted(reasons - {'None'})}") from error
        raise LedgerUnavailableError(f"{operation} failed: {code or error}") from error
    except BotoCoreError as error:
        raise LedgerUnavailableError(f"{operation} failed: {error}") from error


class LedgerTable:
    """The ledger table: consistent reads, conditional writes, and the clock that stamps them."""

    def __init__(self, client: DynamoDBClient, name: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.client = client
        self.name = name
        self.clock = clock

    def get(self, item_key: Item, operation: str) -> Values | None:
        """One item by key (consistent), or None."""
        with ledger_errors(operation):
            item = self.client.get_item(TableName=self.name, Key=item_key, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def batch_get(self, keys: Sequence[Item]) -> dict[str, Values]:
        """Consistent BatchGetItem over any number of keys (by `key_text`), retrying unprocessed keys."""
        found: dict[str, Values] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            pending: list[Item] = list(keys[start : start + BATCH_GET_LIMIT])
            attempts = 0
            while pending:
                with ledger_errors("BatchGetItem"):
                    response = self.client.batch_get_item(
                        RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
                    )
                for item in response.get("Responses", {}).get(self.name, []):
                    found[key_text(item)] = from_item(item)
                unprocessed = response.get("UnprocessedKeys", {}).get(self.name)
                pending = list(unprocessed["Keys"]) if unprocessed else []
                if pending:
                    # DynamoDB returns unprocessed keys when throttled: back off before asking again.
                    attempts += 1
                    if attempts > UNPROCESSED_RETRIES:
                        raise LedgerUnavailableError(f"BatchGetItem: {len(pending)} keys still unprocessed")
                    time.sleep(random.uniform(0, 0.05 * 2**attempts))  # noqa: S311 - jitter, not security
        return found

    def query_prefix(self, pk: str, prefix: str, operation: str) -> list[Values]:
        """Every item of a partition whose sort key starts with `prefix`, in sort-key order (all pages)."""
        items: list[Values] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.name,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": to_item({":pk": pk, ":prefix": prefix}),
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            with ledger_errors(operation):
                page = self.client.query(**kwargs)
            items.extend(from_item(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def query_between(self, pk: str, low: str, high: str, *, forward: bool, limit: int) -> list[Values]:
        """At most `limit` items of a partition with `low <= sk <= high`, nearest first in `forward` order."""
        with ledger_errors("Query range"):
            page = self.client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=to_item({":pk": pk, ":low": low, ":high": high}),
                ScanIndexForward=forward,
                ConsistentRead=True,
                Limit=limit,
            )
        return [from_item(item) for item in page.get("Items", [])]

    def first_matching(
        self,
        pk: str,
        low: str,
        high: str,
        *,
        forward: bool,
        conditions: Mapping[str, Any],
        page_size: int,
        max_pages: int,
    ) -> Values | None:
        """The first item (nearest `low` when `forward`, else nearest `high`) of a partition with
        `low <= sk <= high` whose attributes equal `conditions`, read page by page, at most `max_pages` pages.

        DynamoDB applies `Limit` before the filter, so a page may hold no match while later ones do: it goes on
        from `LastEvaluatedKey` until a match, the end of the range, or the bound (then None)."""
        names = {f"#c{i}": name for i, name in enumerate(conditions)}
        values = {f":c{i}": value for i, value in enumerate(conditions.values())}
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "FilterExpression": " AND ".join(f"#c{i} = :c{i}" for i in range(len(conditions))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item({":pk": pk, ":low": low, ":high": high, **values}),
            "ScanIndexForward": forward,
            "ConsistentRead": True,
            "Limit": page_size,
        }
        for _ in range(max_pages):
            with ledger_errors("Query range (filtered)"):
                page = self.client.query(**request)
            if page.get("Items"):
                return from_item(page["Items"][0])
            if "LastEvaluatedKey" not in page:
                return None
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return None

    def put(self, operation: str, **request: Any) -> None:
        """PutItem on the table (the request names its condition)."""
        with ledger_errors(operation):
            self.client.put_item(TableName=self.name, **request)

    def update(self, operation: str, **request: Any) -> None:
        """UpdateItem on the table (the request names its condition)."""
        with ledger_errors(operation):
            self.client.update_item(TableName=self.name, **request)

    def transact(self, operation: str, writes: Sequence[Mapping[str, Any]]) -> None:
        """TransactWriteItems of `{"Put"|"Update": request}` writes on this table (at most 100)."""
        items: Any = [{kind: {"TableName": self.name, **request} for kind, request in w.items()} for w in writes]
        with ledger_errors(operation):
            self.client.transact_write_items(TransactItems=items)
