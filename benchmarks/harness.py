"""What the moto benchmarks share: the stack with cold-started handlers, quiet invocations, a request log.

Everything is built from the test support (`tests.support`, `tests.conftest`), so the benchmarks exercise
exactly what the integration tests do: the template's table on moto and each function's real `app.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moto import mock_aws
from moto.core.model_instances import reset_model_data

from tests.conftest import cold_start
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.requests import RequestLog
from tests.support.stack import Stack, create_stack

Event = dict[str, Any]
FUNCTIONS = ("push_guard", "scan_recorder", "audit_watcher")


def digest(label: str) -> str:
    """A well-formed, deterministic image digest named after `label`."""
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


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
