"""The one logger, metrics and tracer every function shares (Powertools, configured from the environment)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service="tagwarden")
metrics = Metrics(namespace="Tagwarden")

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


@functools.cache
def tracer() -> Tracer:
    """The X-Ray tracer, created on first use: the X-Ray SDK costs more import time than boto3 itself."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="tagwarden")


def capture_lambda_handler(handler: HandlerT) -> HandlerT:
    """`Tracer.capture_lambda_handler`, with the tracer built at the first invocation instead of import."""
    traced: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        nonlocal traced
        if traced is None:
            traced = tracer().capture_lambda_handler(handler)
        return traced(event, context)

    return invoke  # type: ignore[return-value]
