"""Run the demo: `python -m demo [--json] [--dynamodb-local]` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

from rich.console import Console
from rich.table import Table

from demo.story import EXPECTED, ExpectedAlert, Step, story
from tests.support.handlers import FakeLambdaContext, load_function_module
from tests.support.stack import ReceivedAlert, Stack, create_stack

FUNCTIONS = ("push_guard", "scan_recorder", "audit_watcher")
# No real account is ever reached: fake credentials, quiet logs, no tracing.
_DEMO_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
}


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


def run(steps: Sequence[Step], stack: Stack) -> list[tuple[Step, dict[str, Any]]]:
    """Deliver every step's event to its function's real `lambda_handler`; return what each returned."""
    handlers = {name: load_function_module(name, stack.environment()).lambda_handler for name in FUNCTIONS}
    results = []
    for step in steps:
        # Powertools prints each invocation's metrics as a JSON line; the demo shows its own output.
        with contextlib.redirect_stdout(io.StringIO()):
            results.append((step, handlers[step.function](step.event, FakeLambdaContext())))
    return results


def missing(expected: Sequence[ExpectedAlert], received: Sequence[ReceivedAlert]) -> list[ExpectedAlert]:
    """Expected alerts that did not arrive."""
    got = {(r.alert.type, r.alert.severity, r.alert.tag) for r in received}
    return [e for e in expected if (e.type, e.severity, e.tag) not in got]


def _print_report(console: Console, results: list[tuple[Step, dict[str, Any]]], received: list[ReceivedAlert]) -> None:
    console.rule("[bold]Tagwarden demo: a tag moves after its scan[/bold]")
    timeline = Table(show_header=True, header_style="bold", expand=True)
    for column in ("act", "who", "what happens", "function", "alerts"):
        timeline.add_column(column)
    for step, result in results:
        count = len(result.get("alerts", []))
        timeline.add_row(step.act, step.actor, step.what, step.function, f"[red]{count}[/red]" if count else "-")
    console.print(timeline)
    console.rule("[bold]The security team's inbox (SNS -> SQS)[/bold]")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Play the story; exit 0 only if every expected alert arrived."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the received alerts as JSON")
    parser.add_argument("--dynamodb-local", action="store_true", help="run the ledger on DynamoDB Local (needs Java)")
    args = parser.parse_args(argv)
    with _embedded_aws(args.dynamodb_local):
        stack = create_stack("tagwarden-demo")
        results = run(story(), stack)
        received = stack.received_alerts()
    absent = missing(EXPECTED, received)
    if args.json:
        print(json.dumps([r.raw for r in received], indent=2))
    else:
        console = Console()
        _print_report(console, results, received)
        if absent:
            console.print(f"[bold red]MISSING {len(absent)} expected alert(s):[/bold red] {absent}")
        else:
            console.print(f"[bold green]Caught: all {len(EXPECTED)} expected alerts arrived.[/bold green]")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main())
