"""Counting the AWS requests a handler makes, through botocore's own events (no counters in production code)."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.model import OperationModel

# ECR: the push guard reads an index's manifest (BatchGetImage), and asks ECR to settle same-second ties.
COUNTED_SERVICES = ("dynamodb", "sns", "ecr")
# Attributes of a ledger entry's alert outbox (adapters/dynamodb/outbox.py): requests that only touch these
# are alert bookkeeping (lease, delivered flag), which the common-path budget leaves out.
ALERT_OUTBOX_PREFIX = "alerts_"


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One AWS request a handler made."""

    service: str
    operation: str
    alert_bookkeeping: bool


def _is_alert_bookkeeping(model: OperationModel, request: Mapping[str, Any]) -> bool:
    """An UpdateItem whose expression touches only the alert outbox, not the ledger's facts."""
    if model.name != "UpdateItem":
        return False
    body = request.get("body") or b"{}"
    expression = str(json.loads(body).get("UpdateExpression", ""))
    return ALERT_OUTBOX_PREFIX in expression


@dataclass
class RequestLog:
    """The AWS requests made while recording, seen through botocore's `before-call` event (one per API call),
    and the time spent inside them (from `before-call` to `after-call`: the emulated service's time)."""

    calls: list[ApiCall] = field(default_factory=list)
    recording: bool = False
    seconds_in_calls: float = 0.0
    _started: float = 0.0

    def attach(self) -> None:
        """Listen on boto3's default session, which the functions' client factory uses.

        A client copies its session's handlers when it is created, so this must run before the handlers'
        first invocation creates their clients. moto replaces the default session inside `mock_aws`, so
        it must also run inside it.
        """
        events = boto3._get_default_session().events
        for service in COUNTED_SERVICES:
            events.register(f"before-call.{service}", self._on_call)
            events.register(f"after-call.{service}", self._on_return)

    def _on_call(self, model: OperationModel, params: Mapping[str, Any], **_: Any) -> None:
        if self.recording:
            service = model.service_model.service_name
            self.calls.append(ApiCall(service, model.name, _is_alert_bookkeeping(model, params)))
            self._started = time.perf_counter()

    def _on_return(self, **_: Any) -> None:
        if self.recording:
            self.seconds_in_calls += time.perf_counter() - self._started

    @contextlib.contextmanager
    def record(self) -> Iterator[list[ApiCall]]:
        """Collect the requests made inside the block."""
        calls: list[ApiCall] = []
        self.calls, self.recording, self.seconds_in_calls = calls, True, 0.0
        try:
            yield calls
        finally:
            self.recording = False


def dynamodb_operations(calls: list[ApiCall]) -> Counter[str]:
    """DynamoDB requests by operation name."""
    return Counter(call.operation for call in calls if call.service == "dynamodb")
