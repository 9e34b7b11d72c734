"""Shared fixtures: an AWS-free environment, a Lambda context, the stack on moto, and the handlers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.support.containers import moto_server
from tests.support.dynamodb_local import run_dynamodb_local
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.stack import Stack, create_stack
from tests.support.template import REPO_ROOT

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


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The template's ledger table, an alerts topic and a security inbox, on moto."""
    with mock_aws():
        yield create_stack()


def cold_start(function: str, environment: dict[str, str], context: FakeLambdaContext) -> Handler:
    """A function's real `lambda_handler`, freshly imported with `environment`, bound to `context`."""
    module = load_function_module(function, environment)

    def invoke(event: dict[str, Any]) -> Any:
        return module.lambda_handler(event, context)

    return invoke


@pytest.fixture
def push_guard(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    """The real push guard handler, cold-started against the moto stack."""
    return cold_start("push_guard", stack.environment(), lambda_context)


@pytest.fixture
def scan_recorder(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    """The real scan recorder handler, cold-started against the moto stack."""
    return cold_start("scan_recorder", stack.environment(), lambda_context)


@pytest.fixture
def audit_watcher(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    """The real audit watcher handler, cold-started against the moto stack."""
    return cold_start("audit_watcher", stack.environment(), lambda_context)


@pytest.fixture
def trail_watcher(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    """The real trail watcher handler, cold-started against the moto stack."""
    return cold_start("trail_watcher", stack.environment(), lambda_context)


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """AWS's own DynamoDB engine on a loopback port, for the whole test session."""
    with run_dynamodb_local(REPO_ROOT) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def moto_server_endpoint() -> Iterator[str]:
    """moto as a server on loopback, for SNS and SQS seen from several processes."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def local_stack(dynamodb_local_endpoint: str, moto_server_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with its ledger on DynamoDB Local and its topic and inbox on the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", moto_server_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server_endpoint)
    # The push guard's ECR reads (image indexes, same-second ties) go to the moto server too.
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto_server_endpoint)
    return create_stack(f"tw{uuid.uuid4().hex[:12]}")
