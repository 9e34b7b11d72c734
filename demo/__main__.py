"""The Tagwarden demo: the mutant-tag attack caught end to end, on a local AWS (no account needed).

`make demo` runs it once on moto in process. `make try` (`--keep`) runs it on a moto server on a local
port instead, adds the images the story ends with to that server's ECR, then keeps the server running
and prints the `tagwarden` commands to explore the ledger from another terminal, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from rich.console import Console
from rich.table import Table
from tagwarden.domain.severity import Severity

from demo.story import ATTACKER, EXPECTED, EXPECTED_ADMISSIONS, REPOSITORY, SCANNED, ExpectedAlert, Step, story
from tests.support.admission import ApiServerClient, in_process_server
from tests.support.audit import ECR
from tests.support.dynamodb_local import DynamoDBLocalError
from tests.support.handlers import FakeLambdaContext, load_function_module
from tests.support.stack import REGION, ReceivedAlert, Stack, create_stack

FUNCTIONS = ("push_guard", "scan_recorder", "audit_watcher")
STACK_NAME = "tagwarden-demo"
# `make try`'s port: fixed, so that the commands it prints (and the README's) stay the same from run to run.
TRY_PORT = 4580
# The story's registry account: the kept server's ECR answers as this account, so `backfill` finds the
# story's repository under the registry the ledger already knows.
STORY_ACCOUNT = ECR.split(".", 1)[0]
# No real account is ever reached: fake credentials, quiet logs, no tracing.
_DEMO_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
}
# Most severe first, as the alerts' severities are ranked.
_SEVERITIES = sorted(Severity, key=lambda severity: -severity.rank)


class PortInUseError(RuntimeError):
    """The port `make try` serves on is taken."""


@contextlib.contextmanager
def _embedded_aws(dynamodb_local: bool) -> Iterator[None]:
    """moto in process; optionally the ledger on DynamoDB Local (AWS's own engine) instead."""
    from moto import mock_aws

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, _DEMO_ENVIRONMENT))
        if dynamodb_local:
            from tests.support.containers import local_services

            stack.enter_context(local_services())
        else:
            stack.enter_context(mock_aws())
        yield


@contextlib.contextmanager
def local_server(port: int) -> Iterator[str]:
    """A moto server on loopback `port`, answering as the story's account, with every AWS client of this
    process pointed at it (AWS_ENDPOINT_URL); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # moto's server would hang waiting for a socket it cannot bind: check first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            message = f"port {port} is not free ({error.strerror}): pass another, e.g. make try PORT={port + 1}"
            raise PortInUseError(message) from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    endpoint = f"http://127.0.0.1:{port}"
    environment = {**_DEMO_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, "MOTO_ACCOUNT_ID": STORY_ACCOUNT}
    with mock.patch.dict(os.environ, environment):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield endpoint
        finally:
            server.stop()


@contextlib.contextmanager
def webhook(stack: Stack) -> Iterator[ApiServerClient]:
    """The admission webhook's real HTTPS server (as `python -m tagwarden.admission` runs it) on a loopback
    port, in this process so that it reads the same embedded ledger; its CA verifies it as the API server
    would. Its decision lines are dropped (the demo prints the answers)."""
    with (
        tempfile.TemporaryDirectory() as directory,
        in_process_server(stack.table_name, Path(directory), _quiet) as client,
    ):
        yield client


def _quiet(_line: str) -> None:
    """Where the demo's webhook writes its decision lines."""


def admission_outcome(response: dict[str, Any]) -> str:
    """`pinned`, `denied`, `warned` or `allowed`: what the webhook's answer did to the pod."""
    if not response["allowed"]:
        return "denied"
    if "patch" in response:
        return "pinned"
    return "warned" if response.get("warnings") else "allowed"


def run(steps: Sequence[Step], stack: Stack) -> list[tuple[Step, dict[str, Any]]]:
    """Deliver every step's event to its function's real `lambda_handler`, or its review to the webhook's real
    server over HTTPS; return what each returned (for the webhook: its outcome and answer)."""
    handlers = {name: load_function_module(name, stack.environment()).lambda_handler for name in FUNCTIONS}
    results: list[tuple[Step, dict[str, Any]]] = []
    with webhook(stack) as client:
        for step in steps:
            if step.function == "admission":
                response = client.review(step.event, step.mode)
                results.append((step, {"admission": admission_outcome(response), "response": response}))
                continue
            # Powertools prints each invocation's metrics as a JSON line; the demo shows its own output.
            with contextlib.redirect_stdout(io.StringIO()):
                results.append((step, handlers[step.function](step.event, FakeLambdaContext())))
    return results


def admission_misses(results: Sequence[tuple[Step, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """Expected webhook outcomes (act, mode, outcome) that did not happen."""
    got = {(step.act, step.mode, result["admission"]) for step, result in results if "admission" in result}
    return [expected for expected in EXPECTED_ADMISSIONS if expected not in got]


def missing(expected: Sequence[ExpectedAlert], received: Sequence[ReceivedAlert]) -> list[ExpectedAlert]:
    """Expected alerts that did not arrive."""
    got = {(r.alert.type, r.alert.severity, r.alert.tag) for r in received}
    return [e for e in expected if (e.type, e.severity, e.tag) not in got]


def severity_counts(received: Sequence[ReceivedAlert]) -> str:
    """`2 CRITICAL, 1 HIGH, 1 MEDIUM`: the alerts counted per severity, most severe first."""
    counts = Counter(item.alert.severity for item in received)
    return ", ".join(f"{counts[severity]} {severity.value}" for severity in _SEVERITIES if counts[severity])


def _print_report(console: Console, results: list[tuple[Step, dict[str, Any]]], received: list[ReceivedAlert]) -> None:
    console.rule("[bold]Tagwarden demo: a tag moves after its scan[/bold]")
    timeline = Table(show_header=True, header_style="bold", expand=True)
    for column in ("act", "who", "what happens", "function", "alerts"):
        timeline.add_column(column)
    for step, result in results:
        if "admission" in result:
            outcome = result["admission"]
            shown = f"[red]{outcome}[/red]" if outcome == "denied" else f"[green]{outcome}[/green]"
            timeline.add_row(step.act, step.actor, step.what, f"webhook ({step.mode})", shown)
            continue
        count = len(result.get("alerts", []))
        timeline.add_row(step.act, step.actor, step.what, step.function, f"[red]{count}[/red]" if count else "-")
    console.print(timeline)
    for step, result in results:
        if result.get("admission") == "denied":
            console.print(f"act {step.act}, the API server refuses the pod: {result['response']['status']['message']}")
    console.print()
    console.rule(f"[bold]The security team's inbox (SNS -> SQS): {severity_counts(received) or 'empty'}[/bold]")
    colours = {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "cyan", "INFO": "green"}
    for item in received:
        alert = item.alert
        colour = colours[alert.severity.value]
        image = f"{alert.repository}:{alert.tag}" if alert.tag else alert.repository
        lines = [
            f"[{colour}]{alert.severity.value:<8}[/{colour}] [bold]{alert.type.value}[/bold]  {image}",
            f"         {alert.summary}",
            f"         previous {alert.previous_digest or '-'}",
            f"         current  {alert.current_digest or '-'}",
            "",
        ]
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)


def seed_registry() -> None:
    """The story's end state in ECR: the attacker's image under `latest` and `1.4.0`, the scanned one untagged."""
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName=REPOSITORY)
    for digest, tags in ((SCANNED, [None]), (ATTACKER, ["latest", "1.4.0"])):
        for tag in tags:
            ecr.put_image(
                repositoryName=REPOSITORY,
                imageManifest=_manifest(digest),
                imageDigest=digest,
                **({"imageTag": tag} if tag else {}),
            )


def _manifest(digest: str) -> str:
    """An image manifest, different per image (ECR tells images apart by their manifests)."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1, "digest": digest}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1, "digest": digest}
    media_type = "application/vnd.oci.image.manifest.v1+json"
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": [layer]})


def try_commands(endpoint: str, table: str) -> list[tuple[str, str]]:
    """The commands `make try` prints, each with what it shows; `$REPO` is the story's repository."""
    ledger = f"--endpoint-url {endpoint} --region {REGION} --table {table}"
    cli = ".venv/bin/tagwarden"
    return [
        (f"{cli} history $REPO:1.4.0 {ledger}", "the tag's timeline: pushed, deleted, pushed again by the attacker"),
        (f"{cli} check $REPO:1.4.0 {ledger}", "exit 1: the tag moved since its scan"),
        (f"{cli} pin $REPO@{SCANNED} {ledger}", "the scanned digest passes: the reference to deploy"),
        (f"{cli} --json check $REPO:latest {ledger}", "exit 1, as JSON: the attacker's image under latest"),
        (f"{cli} backfill {ledger}", "ECR (here: the local one) agrees with the ledger; nothing published"),
    ]


def print_try_commands(endpoint: str, table: str) -> None:
    """How to explore the kept ledger from another terminal."""
    print(f"\nThe ledger stays up at {endpoint} (table {table}). In another terminal, in this directory:\n")
    print("export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo  # the local server takes any credentials")
    print(f"REPO={ECR}/{REPOSITORY}\n")
    for command, shows in try_commands(endpoint, table):
        print(f"{command}\n    # {shows}")
    print("\nCtrl-C stops it (and forgets the ledger).", flush=True)


def _play(console: Console | None) -> tuple[Stack, list[ReceivedAlert], list[ExpectedAlert], list[Any]]:
    stack = create_stack(STACK_NAME)
    results = run(story(), stack)
    received = stack.received_alerts()
    if console is not None:
        _print_report(console, results, received)
    return stack, received, missing(EXPECTED, received), admission_misses(results)


def _verdict(console: Console, received: list[ReceivedAlert], absent: list[ExpectedAlert], misses: list[Any]) -> None:
    if absent:
        console.print(f"[bold red]MISSING {len(absent)} expected alert(s):[/bold red] {absent}")
    else:
        caught = f"Caught: all {len(EXPECTED)} expected alerts arrived ({severity_counts(received)})."
        console.print(f"[bold green]{caught}[/bold green]")
    if misses:
        console.print(f"[bold red]The webhook did not answer as expected (act, mode, outcome):[/bold red] {misses}")
    else:
        stopped = "Stopped at admission: the first pod pinned to the scanned digest, the rescheduled one denied."
        console.print(f"[bold green]{stopped}[/bold green]")


def main(argv: Sequence[str] | None = None) -> int:
    """Play the story; exit 0 only if every expected alert arrived (2 if the local AWS could not start)."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "Play the mutant-tag attack through the real Lambda handlers on a local AWS "
            "(what `make demo` and, with --keep, `make try` run)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the received alerts as JSON")
    parser.add_argument("--dynamodb-local", action="store_true", help="run the ledger on DynamoDB Local (needs Java)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="serve the ledger on a local moto server after the story and print tagwarden commands to explore it",
    )
    parser.add_argument("--port", type=int, default=TRY_PORT, help=f"with --keep, the server's port ({TRY_PORT})")
    args = parser.parse_args(argv)
    if args.keep and args.dynamodb_local:
        parser.error("--keep serves the ledger on moto: it does not combine with --dynamodb-local")
    console = Console()
    try:
        if args.keep:
            return _keep(console, args.port)
        with _embedded_aws(args.dynamodb_local):
            _, received, absent, misses = _play(None if args.json else console)
    except (DynamoDBLocalError, PortInUseError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.raw for r in received], indent=2))
    else:
        _verdict(console, received, absent, misses)
    return 1 if absent or misses else 0


def _keep(console: Console, port: int) -> int:
    with local_server(port) as endpoint:
        stack, received, absent, misses = _play(console)
        _verdict(console, received, absent, misses)
        if absent or misses:
            return 1
        seed_registry()
        print_try_commands(endpoint, stack.table_name)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
