"""A workload's rollouts in the ledger (moto): two deliveries writing at once, and the item's size."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tagwarden.adapters.dynamodb.deployment_ledger import DynamoDbDeploymentLedger
from tagwarden.adapters.dynamodb.items import rollouts_values
from tagwarden.adapters.dynamodb.keys import rollouts_key
from tagwarden.adapters.dynamodb.table import LedgerTable, to_item
from tagwarden.domain.workloads import (
    MAX_INTRODUCTIONS_KEPT,
    MAX_ROLLOUTS_KEPT,
    MAX_STARTS_KEPT,
    Rollouts,
    Sighting,
    rollout_starts,
)

from tests.support.stack import Stack

LOCATION = "prod-eks/shop/api"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
A = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop/api@sha256:" + "a" * 64
B = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop/api@sha256:" + "b" * 64


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def stored(ledger: DynamoDbDeploymentLedger) -> Rollouts:
    return ledger.read_deployment_view((), (), [LOCATION]).rollouts[LOCATION]


def test_two_streams_deliveries_writing_at_once_both_count(stack: Stack) -> None:
    ledger = DynamoDbDeploymentLedger(LedgerTable(stack.dynamodb, stack.table_name))
    # Given two deliveries that read the workload's rollouts at the same time (none yet)
    read = stored(ledger)
    _, from_x = rollout_starts(read, [Sighting(A, minutes(0), True), Sighting(A, minutes(20), True)])
    _, from_y = rollout_starts(read, [Sighting(B, minutes(10), True)])

    # When stream X's delivery writes first, then stream Y's, conditioned on the record it read
    ledger.record_rollouts({LOCATION: (read, from_x)})
    ledger.record_rollouts({LOCATION: (read, from_y)})

    # Then Y's write lost the race, read X's record, and wrote both merged: the rollback is split out
    final = stored(ledger)
    assert (final.starts, final.earlier) == ({A: minutes(20), B: minutes(10)}, {A: (minutes(0),)})
    assert final.version == 2


def test_a_write_that_adds_nothing_to_the_winners_record_is_not_retried(stack: Stack) -> None:
    ledger = DynamoDbDeploymentLedger(LedgerTable(stack.dynamodb, stack.table_name))
    read = stored(ledger)
    _, same = rollout_starts(read, [Sighting(A, minutes(0), True)])
    ledger.record_rollouts({LOCATION: (read, same)})
    ledger.record_rollouts({LOCATION: (read, same)})  # a duplicate delivery processed at the same time
    assert stored(ledger).version == 1


def test_an_unreadable_rollouts_item_reads_as_none_and_is_replaced(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = DynamoDbDeploymentLedger(LedgerTable(stack.dynamodb, stack.table_name))
    # Given a workload's item whose history holds a value that is no time (a hand edit, a future format)
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={
            **rollouts_key(LOCATION),
            "kind": {"S": "workload_rollouts"},
            "contents": {"M": {A: {"S": "2026-11-20T09:00:00.000000Z"}}},
            "history": {"M": {A: {"M": {"earlier": {"S": "oops"}}}}},
            "version": {"N": "3"},
        },
    )
    # When it is read: no rollouts, at the item's version, and a structured warning naming the workload
    with caplog.at_level(logging.WARNING):
        read = stored(ledger)
    assert (read.starts, read.version) == ({}, 3)
    assert any(getattr(r, "location", None) == LOCATION for r in caplog.records if "unreadable" in r.getMessage())
    # Then the next change is written over it, conditioned on that version
    _, after = rollout_starts(read, [Sighting(B, minutes(0), True)])
    ledger.record_rollouts({LOCATION: (read, after)})
    final = stored(ledger)
    assert (final.starts, final.version) == ({B: minutes(0)}, 4)


def test_a_workload_with_every_bound_reached_stays_a_small_item(stack: Stack) -> None:
    """Measured, not assumed: the item of a workload that churned through many contents with long names."""
    ledger = DynamoDbDeploymentLedger(LedgerTable(stack.dynamodb, stack.table_name))
    content = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/platform-team/payments-service-{:03d}@sha256:{:064x}"
    names = [content.format(n, n) for n in range(MAX_ROLLOUTS_KEPT)]
    starts = {name: minutes(600 + n) for n, name in enumerate(names)}
    earlier = {name: tuple(minutes(60 * h) for h in range(1, MAX_STARTS_KEPT)) for name in names}
    spec_writes = {name: tuple(minutes(61 + 2 * m) for m in range(MAX_INTRODUCTIONS_KEPT)) for name in names}
    provisional = {name: (*earlier[name], starts[name]) for name in names}
    aliases = {name: {t: t + timedelta(seconds=30) for t in provisional[name]} for name in names}
    full = Rollouts(starts, 0, earlier, spec_writes, provisional, aliases)

    ledger.record_rollouts({LOCATION: (Rollouts(), full)})

    assert stored(ledger).same_record(full)
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=rollouts_key(LOCATION))["Item"]
    # About 52 KB: under 64 KB (a consistent read of 13 read units; DynamoDB allows 400 KB)
    assert item_size(item) < 64 * 1024
    # A steady pod of 30 images (one start each): about 5 KB
    steady = Rollouts({name: minutes(600) for name in names[:30]})
    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(rollouts_values(LOCATION, steady, 1, T0)))
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=rollouts_key(LOCATION))["Item"]
    assert item_size(item) < 6 * 1024
    _, two = rollout_starts(Rollouts(), [Sighting(A, T0, True), Sighting(B, minutes(5), True)])
    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(rollouts_values(LOCATION, two, 1, T0)))
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=rollouts_key(LOCATION))["Item"]
    assert item_size(item) < 1024


def item_size(value: Any) -> int:
    """DynamoDB's item size: attribute names and values; strings in UTF-8, numbers about one byte per two
    digits plus one, 3 bytes per map or list and 1 per element (the rules of the Developer Guide's "Item
    sizes and formats")."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {"S", "N", "M", "L", "BOOL", "NULL"}:
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return (len(inner.lstrip("-").replace(".", "")) + 1) // 2 + 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + 1 + item_size(v) for k, v in inner.items())
        if kind == "L":
            return 3 + sum(1 + item_size(v) for v in inner)
        return 1
    return sum(len(name.encode()) + item_size(attribute) for name, attribute in value.items())
