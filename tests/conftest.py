"""Shared fixtures: an AWS-free environment, a Lambda context, the stack on moto, and the handlers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from tests.support.handlers import Handler, load_function_module
from tests.support.stack import Stack, create_stack

# No test may reach a real AWS account: fake credentials, a fixed region, tracing off.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
        "POWERTOOLS_SERVICE_NAME": "tagwarden-tests",
    }
)
os.environ.pop("AWS_PROFILE", None)


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str = "tagwarden-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:111122223333:function:tagwarden-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The template's ledger table, an alerts topic and a security inbox, on moto."""
    with mock_aws():
        yield create_stack()


@pytest.fixture
def push_guard(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    """The real push guard handler, cold-started against the moto stack."""
    module = load_function_module("push_guard", stack.environment())

    def invoke(event: dict[str, Any], context: Any = lambda_context) -> Any:
        return module.lambda_handler(event, context)

    return invoke
