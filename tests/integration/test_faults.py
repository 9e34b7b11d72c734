"""Faults through the real handlers: throttling, 5xx, failed publishes and timeouts lose nothing and never
alert twice. Lambda retries a failed invocation of an EventBridge event (then dead-letters it); here a
retry is the same event delivered again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tagwarden.ports import AlertDeliveryError, LedgerUnavailableError

from tests.support.events import ecr_image_action
from tests.support.handlers import FakeLambdaContext, load_function_module
from tests.support.stack import Stack

A, B = ("sha256:" + c * 64 for c in "ab")


class LambdaTimeout(BaseException):
    """What a Lambda timeout looks like from inside: the invocation stops wherever it is."""


@contextmanager
def failing(client: Any, operation: str, error: BaseException, times: int = 1) -> Iterator[list[str]]:
    """Make the next `times` calls of one operation fail (after the client's own retries gave up)."""
    original = client._make_api_call
    failed: list[str] = []

    def call(name: str, params: dict[str, Any]) -> Any:
        if name == operation and len(failed) < times:
            failed.append(name)
            raise error
        return original(name, params)

    client._make_api_call = call
    try:
        yield failed
    finally:
        client._make_api_call = original


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "X")


@pytest.fixture
def guard(stack: Stack) -> ModuleType:
    """The push guard module, cold-started, with its clients created (so faults can be injected)."""
    module = load_function_module("push_guard", stack.environment())
    module.lambda_handler(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"), FakeLambdaContext())
    return module


def invoke(module: ModuleType, event: dict[str, Any]) -> Any:
    return module.lambda_handler(event, FakeLambdaContext())


def clients(module: ModuleType) -> tuple[Any, Any]:
    service = module.PUSH_GUARD
    return service._ledger._table.client, service._delivery._publisher._client


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("TransactWriteItems", client_error("ProvisionedThroughputExceededException", 400)),
        ("TransactWriteItems", client_error("InternalServerError", 500)),
        ("BatchGetItem", client_error("ThrottlingException", 400)),
    ],
)
def test_ledger_faults_fail_the_invocation_and_the_retry_records_once(
    stack: Stack, guard: ModuleType, operation: str, error: ClientError
) -> None:
    dynamodb, _ = clients(guard)
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    before = stack.items()
    with failing(dynamodb, operation, error), pytest.raises(LedgerUnavailableError):
        invoke(guard, overwrite)
    assert stack.items() == before  # the transaction is all or nothing

    assert invoke(guard, overwrite)["outcome"] == "recorded"
    assert invoke(guard, overwrite)["outcome"] == "duplicate"
    assert len(stack.received_alerts()) == 1


def test_failed_publish_is_retried_until_delivered_exactly_once(stack: Stack, guard: ModuleType) -> None:
    _, sns = clients(guard)
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    with failing(sns, "Publish", client_error("InternalError", 500), times=2):
        for _ in range(2):
            with pytest.raises(AlertDeliveryError):
                invoke(guard, overwrite)
    assert stack.received_alerts() == []

    retried = invoke(guard, overwrite)

    assert len(retried["alerts"]) == 1
    assert len(stack.received_alerts()) == 1
    assert invoke(guard, overwrite)["alerts"] == []


def test_ledger_failure_after_publishing_does_not_publish_again(stack: Stack, guard: ModuleType) -> None:
    dynamodb, _ = clients(guard)
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    with failing(dynamodb, "UpdateItem", client_error("InternalServerError", 500)):
        assert len(invoke(guard, overwrite)["alerts"]) == 1  # published; the 'delivered' flag is not written

    assert invoke(guard, overwrite)["alerts"] == []  # a duplicate within the lease stays quiet
    assert len(stack.received_alerts()) == 1


def test_timeout_between_ledger_write_and_publish_is_delivered_by_the_retry(stack: Stack, guard: ModuleType) -> None:
    _, sns = clients(guard)
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    with failing(sns, "Publish", LambdaTimeout()), pytest.raises(LambdaTimeout):
        invoke(guard, overwrite)
    assert invoke(guard, overwrite)["alerts"] == []  # immediately: the dead invocation's lease still holds

    # Lambda retries a timed-out invocation after about a minute: the 30-second lease has expired by then.
    entry = next(i for i in stack.items() if "alerts" in i)
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": entry["pk"], "sk": entry["sk"]},
        UpdateExpression="SET alerts_lease_until = :past",
        ExpressionAttributeValues={":past": {"S": "2026-01-01T00:00:00Z"}},
    )
    assert len(invoke(guard, overwrite)["alerts"]) == 1
    assert len(stack.received_alerts()) == 1


def test_clients_retry_throttling_and_5xx_in_standard_mode_with_bounded_attempts(guard: ModuleType) -> None:
    dynamodb, sns = clients(guard)
    assert dynamodb.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert dynamodb.meta.config.read_timeout == 10
    # Publishing is bounded tighter: it must end within the alert delivery lease (test_architecture).
    assert sns.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert sns.meta.config.read_timeout == 5


def test_an_entry_whose_publish_failed_part_way_does_not_repeat_the_alerts_sns_accepted(stack: Stack) -> None:
    from tests.support.events import ecr_scan

    guard = load_function_module("push_guard", stack.environment())
    recorder = load_function_module("scan_recorder", stack.environment())
    for tag in ("1.4.0", "1.4"):  # two protected tags on A, both moved to B while A is scanned
        guard.lambda_handler(ecr_image_action(tag=tag, digest=A, time="2026-11-20T10:00:00Z"), FakeLambdaContext())
        guard.lambda_handler(ecr_image_action(tag=tag, digest=B, time="2026-11-20T10:00:20Z"), FakeLambdaContext())
    stack.received_alerts()
    scan = ecr_scan(digest=A, tags=[], time="2026-11-20T10:00:45Z")
    client = recorder.SCAN_RECORDER._delivery._publisher._client
    original = client._make_api_call
    calls: list[str] = []

    def second_publish_fails(name: str, params: dict[str, Any]) -> Any:
        if name == "Publish":
            calls.append(name)
            if len(calls) == 2:
                raise client_error("InternalError", 500)
        return original(name, params)

    client._make_api_call = second_publish_fails
    try:
        with pytest.raises(AlertDeliveryError):
            recorder.lambda_handler(scan, FakeLambdaContext())
    finally:
        client._make_api_call = original
    assert len(stack.received_alerts()) == 1

    retried = recorder.lambda_handler(scan, FakeLambdaContext())

    assert len(retried["alerts"]) == 1  # only the one SNS had not accepted
    assert len(stack.received_alerts()) == 1
    assert recorder.lambda_handler(scan, FakeLambdaContext())["alerts"] == []
