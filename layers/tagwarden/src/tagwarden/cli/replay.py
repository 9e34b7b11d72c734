"""Replaying recorded events through the path the Lambda handlers use: parse with the function's model, then
the function's service.

Which function an event belongs to is a table (`ROUTES`): one entry per function, matching on the
event's shape. The audit watcher's entry has no handler yet, so its events (CloudWatch Logs envelopes,
decoded log data, raw Kubernetes audit lines) are reported as unsupported; giving the entry a handler
is all it takes to replay them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tagwarden.cli.errors import usage_error
from tagwarden.events.ecr import EcrImageActionEvent
from tagwarden.events.parsing import InvalidEventError, parse_event
from tagwarden.events.scans import ScanEvent
from tagwarden.services.push_guard import PushGuard
from tagwarden.services.results import Result
from tagwarden.services.scan_recorder import ScanRecorder


class ReplayServices(Protocol):
    """The functions' services, built on first use."""

    def push_guard(self) -> PushGuard:
        """The push guard."""
        ...

    def scan_recorder(self) -> ScanRecorder:
        """The scan recorder."""
        ...


@dataclass(frozen=True, slots=True)
class Handled:
    """What a function did with one event, in words, and the alerts it raised."""

    outcome: str
    alerts: tuple[str, ...] = ()

    @classmethod
    def of(cls, result: Result) -> Handled:
        """From the push guard's or the scan recorder's result."""
        return cls(result.outcome.value, result.alerts)


Handler = Callable[[ReplayServices, Any], Handled]


@dataclass(frozen=True, slots=True)
class Route:
    """Events of one function: how to recognise them, and what the function does with one."""

    function: str
    accepts: Callable[[Mapping[str, Any]], bool]
    handle: Handler | None
    unsupported: str = ""


def _eventbridge(*kinds: tuple[str, str]) -> Callable[[Mapping[str, Any]], bool]:
    wanted = frozenset(kinds)
    return lambda event: (event.get("source"), event.get("detail-type")) in wanted


def _audit_record(event: Mapping[str, Any]) -> bool:
    # A CloudWatch Logs subscription envelope, its decoded data, or a raw kube-apiserver audit line.
    api_version = event.get("apiVersion")
    return (
        "awslogs" in event
        or ("logEvents" in event and "messageType" in event)
        or (isinstance(api_version, str) and api_version.startswith("audit.k8s.io/"))
    )


def _push_guard(services: ReplayServices, event: Any) -> Handled:
    return Handled.of(services.push_guard().handle(parse_event(event, EcrImageActionEvent).to_fact()))


def _scan_recorder(services: ReplayServices, event: Any) -> Handled:
    return Handled.of(services.scan_recorder().handle(parse_event(event, ScanEvent).to_fact()))


ROUTES: tuple[Route, ...] = (
    Route("push-guard", _eventbridge(("aws.ecr", "ECR Image Action")), _push_guard),
    Route(
        "scan-recorder",
        _eventbridge(("aws.ecr", "ECR Image Scan"), ("aws.inspector2", "Inspector2 Scan")),
        _scan_recorder,
    ),
    Route("audit-watcher", _audit_record, None, "unsupported (audit watcher not installed)"),
)


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replaying one event did."""

    origin: str  # file#position
    function: str | None
    event_id: str | None
    outcome: str
    alerts: tuple[str, ...] = ()
    ok: bool = True

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "event": self.origin,
            "function": self.function,
            "event_id": self.event_id,
            "outcome": self.outcome,
            "alerts": list(self.alerts),
            "ok": self.ok,
        }


def read_events(path: Path) -> list[Any]:
    """The events a file holds: one JSON event, a JSON list of events, or one JSON event per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise usage_error(f"cannot read {path}: {error}") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        events: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise usage_error(f"{path}:{number}: not JSON, a JSON list or JSON lines ({error.msg})") from None
        return events
    return loaded if isinstance(loaded, list) else [loaded]


def replay(origin: str, event: Any, services: ReplayServices, routes: Sequence[Route] = ROUTES) -> Replayed:
    """Feed one recorded event to the function it belongs to, as its handler would."""
    if not isinstance(event, dict):
        return Replayed(origin, None, None, f"unsupported (a JSON {type(event).__name__}, not an event)", ok=False)
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    route = next((r for r in routes if r.accepts(event)), None)
    if route is None:
        kind = f"source {event.get('source')!r}, detail-type {event.get('detail-type')!r}"
        return Replayed(origin, None, event_id, f"unsupported ({kind})", ok=False)
    if route.handle is None:
        return Replayed(origin, route.function, event_id, route.unsupported, ok=False)
    try:
        handled = route.handle(services, event)
    except InvalidEventError as error:
        return Replayed(origin, route.function, event_id, f"invalid: {error}", ok=False)
    return Replayed(origin, route.function, event_id, handled.outcome, handled.alerts)
