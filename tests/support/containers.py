"""Several 'Lambda containers' (processes) delivering events at once, against DynamoDB Local and a moto server.

Used by the concurrency tests and by the load figure of the benchmark.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

from tests.support.dynamodb_local import run_dynamodb_local
from tests.support.handlers import FakeLambdaContext, load_function_module
from tests.support.stack import Stack
from tests.support.template import REPO_ROOT

LAMBDA_RETRIES = 3
_FUNCTIONS = {
    "ECR Image Action": "push_guard",
    "ECR Image Scan": "scan_recorder",
    "Inspector2 Scan": "scan_recorder",
    "Inspector2 Finding": "scan_recorder",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto as a server on a loopback port (seen from several processes); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def local_services() -> Iterator[None]:
    """DynamoDB Local for the ledger and a moto server for SNS and SQS, with the AWS_ENDPOINT_URL_* set."""
    with run_dynamodb_local(REPO_ROOT) as dynamodb, moto_server() as moto_endpoint:
        endpoints = {
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
            "AWS_ENDPOINT_URL_SNS": moto_endpoint,
            "AWS_ENDPOINT_URL_SQS": moto_endpoint,
            # The push guard reads image indexes, and where a tag points on a same-second tie, from ECR.
            "AWS_ENDPOINT_URL_ECR": moto_endpoint,
        }
        with mock.patch.dict(os.environ, endpoints):
            yield


def _container(environment: dict[str, str], events: list[dict[str, Any]], barrier: Any, results: Any) -> None:
    """One container per function: cold start, wait for the others, then deliver; failures are retried."""
    quiet = {**environment, "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
    functions = {name: load_function_module(name, quiet).lambda_handler for name in set(_FUNCTIONS.values())}
    handlers = {kind: functions[name] for kind, name in _FUNCTIONS.items()}
    outcomes: list[str] = []
    barrier.wait()
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        for event in events:
            handler = handlers[event["detail-type"]]
            for attempt in range(LAMBDA_RETRIES):
                try:
                    outcomes.append(handler(event, FakeLambdaContext())["outcome"])
                    break
                except Exception as error:  # a failed invocation is retried, as Lambda would
                    if attempt == LAMBDA_RETRIES - 1:
                        outcomes.append(f"failed: {error}")
    results.put(outcomes)


def deliver_concurrently(stack: Stack, deliveries: list[dict[str, Any]], containers: int = 4) -> list[str]:
    """Deliver the events from `containers` processes at once (each takes every n-th); return the outcomes."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(containers), context.Queue()
    environment = {
        **stack.environment(),
        "AWS_ENDPOINT_URL_DYNAMODB": stack.dynamodb.meta.endpoint_url,
        "AWS_ENDPOINT_URL_SNS": stack.sns.meta.endpoint_url,
    }
    shares = [deliveries[i::containers] for i in range(containers)]
    processes = [context.Process(target=_container, args=(environment, share, barrier, results)) for share in shares]
    for process in processes:
        process.start()
    outcomes = [outcome for _ in processes for outcome in results.get(timeout=300)]
    for process in processes:
        process.join(timeout=30)
    return outcomes
