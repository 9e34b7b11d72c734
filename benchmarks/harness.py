"""What the moto benchmarks share: the stack with cold-started handlers, quiet invocations, a request log.

Everything is built from the test support (`tests.support`, `tests.conftest`), so the benchmarks exercise
exactly what the integration tests do: the template's table on moto and each function's real `app.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.model import OperationModel
from moto import mock_aws
from moto.core.model_instances import reset_model_data

from tests.conftest import cold_start
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import Stack, create_stack

Event = dict[str, Any]
FUNCTIONS = ("push_guard", "scan_recorder", "audit_watcher")
COUNTED_SERVICES = ("dynamodb", "sns")
# Attributes of a ledger entry's alert outbox (see services/alert_delivery.py): requests that only touch these
# are alert bookkeeping (lease, delivered flag), which the common-path budget leaves out.
ALERT_OUTBOX_PREFIX = "alerts_"


def digest(label: str) -> str:
    """A well-formed, deterministic image digest named after `label`."""
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


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


@dataclass
class Deployment:
    """The stack on moto, the functions' real handlers cold-started against it, and the request log."""

    stack: Stack
    requests: RequestLog
    handlers: dict[str, Handler]

    def invoke(self, function: str, event: Event) -> dict[str, Any]:
        """Deliver one event. Powertools' `log_metrics` prints a metrics line per call: it is dropped."""
        with contextlib.redirect_stdout(io.StringIO()):
            result: dict[str, Any] = self.handlers[function](event)
        return result

    def forget_moto_instances(self) -> None:
        """Drop moto's record of every model object it has created; the ledger itself is untouched.

        moto keeps each model object it creates (for its dashboard) until the mock ends, including the copy of
        the whole table that TransactWriteItems makes for each of its items (a rollback copy). Over a batch that
        is memory, and garbage-collection time, growing with the square of the events (1.6 GB after 500
        pushes). Call it between timed events.
        """
        reset_model_data()


@contextlib.contextmanager
def deployed(functions: tuple[str, ...] = FUNCTIONS) -> Iterator[Deployment]:
    """A fresh moto account with the stack, and freshly imported handlers (their clients not created yet)."""
    with mock_aws():
        stack = create_stack()
        requests = RequestLog()
        requests.attach()
        context = FakeLambdaContext()
        handlers = {function: cold_start(function, stack.environment(), context) for function in functions}
        yield Deployment(stack, requests, handlers)
