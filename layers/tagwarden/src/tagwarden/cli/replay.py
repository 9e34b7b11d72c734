"""Replaying recorded events through the path the Lambda handlers use: parse with the function's model, then
the function's service.

Which function an event belongs to is a table (`ROUTES`): one entry per function, matching on the
event's shape. The audit watcher takes what its function receives, a CloudWatch Logs subscription
envelope; two other forms are first made into one, so that they take the same parsing path:

- decoded subscription data (`messageType`, `logGroup`, `logEvents`, ...), as `aws logs` tools print it,
  is compressed and encoded as CloudWatch Logs does;
- raw Kubernetes audit lines (`apiVersion: audit.k8s.io/...`, kind Event), as kube-apiserver writes them,
  are delivered as the subscription on `/aws/eks/<cluster>/cluster` would: each run of consecutive
  lines of a file in one delivery of at most `AUDIT_LINES_PER_DELIVERY` lines (see `deliveries`).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from tagwarden.cli.errors import usage_error
from tagwarden.domain.images import InvalidReferenceError
from tagwarden.events.audit import AuditBatch, Home, SubscriptionDelivery, read_batch
from tagwarden.events.cloudtrail import EcrApiCallEvent
from tagwarden.events.ecr import EcrImageActionEvent
from tagwarden.events.parsing import InvalidEventError, parse_event
from tagwarden.events.scans import ScanEvent
from tagwarden.services.audit_watcher import AuditWatcher
from tagwarden.services.push_guard import PushGuard
from tagwarden.services.results import Result
from tagwarden.services.scan_recorder import ScanRecorder
from tagwarden.services.trail_watcher import TrailResult, TrailWatcher

# CloudWatch Logs puts at most 10,000 log events in one subscription delivery.
AUDIT_LINES_PER_DELIVERY = 10_000
# EKS cluster names; the cluster is also part of usage locations (`cluster/namespace/kind/name`), so no `/`.
_CLUSTER_NAME_RE = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")


class ReplayServices(Protocol):
    """The functions' services, built on first use."""

    def push_guard(self) -> PushGuard:
        """The push guard."""
        ...

    def scan_recorder(self) -> ScanRecorder:
        """The scan recorder."""
        ...

    def audit_watcher(self) -> AuditWatcher:
        """The audit watcher."""
        ...

    def trail_watcher(self) -> TrailWatcher:
        """The trail watcher."""
        ...

    def audit_home(self) -> Home:
        """The stack's own account and region, for naming the clusters of replayed deliveries."""
        ...


@dataclass(frozen=True, slots=True)
class Handled:
    """What a function did with one event, in words, and the alerts it raised."""

    outcome: str
    alerts: tuple[str, ...] = ()
    # The id the function knows the event by, when the event itself has no `id` (a delivery's first log event).
    event_id: str | None = None
    # The audit watcher's result, as its handler returns it.
    audit: Mapping[str, object] | None = None

    @classmethod
    def of(cls, result: Result | TrailResult) -> Handled:
        """From the push guard's, the scan recorder's or the trail watcher's result."""
        return cls(result.outcome.value, result.alerts)

    @classmethod
    def of_audit(cls, batch: AuditBatch, checked: Mapping[str, object]) -> Handled:
        """From the audit watcher's result for one delivery: `checked: 6 lines, 3 observations, 3 skipped (...)`."""
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(batch.skipped.items()))
        outcome = (
            f"checked: {batch.lines} lines, {checked['observations']} observations, "
            f"{sum(batch.skipped.values())} skipped" + (f" ({reasons})" if reasons else "")
        )
        alerts = checked["alerts"]
        return cls(outcome, tuple(alerts) if isinstance(alerts, list) else (), batch.delivery_id, checked)


Handler = Callable[[ReplayServices, Any], Handled]


@dataclass(frozen=True, slots=True)
class Route:
    """Events of one function: how to recognise them, and what the function does with one."""

    function: str
    accepts: Callable[[Mapping[str, Any]], bool]
    handle: Handler


def _eventbridge(*kinds: tuple[str, str]) -> Callable[[Mapping[str, Any]], bool]:
    wanted = frozenset(kinds)

    def accepts(event: Mapping[str, Any]) -> bool:
        source, detail_type = event.get("source"), event.get("detail-type")
        return isinstance(source, str) and isinstance(detail_type, str) and (source, detail_type) in wanted

    return accepts


def _subscription_data(event: Mapping[str, Any]) -> bool:
    return "logEvents" in event and "messageType" in event


def _audit_delivery(event: Mapping[str, Any]) -> bool:
    # Raw audit lines never get here: `deliveries` has made them into envelopes.
    return "awslogs" in event or _subscription_data(event)


def is_audit_line(event: object) -> bool:
    """A raw Kubernetes audit event, as kube-apiserver writes it to its audit log (one per line)."""
    if not isinstance(event, dict):
        return False
    api_version = event.get("apiVersion")
    return isinstance(api_version, str) and api_version.startswith("audit.k8s.io/") and event.get("kind") == "Event"


def _push_guard(services: ReplayServices, event: Any) -> Handled:
    return Handled.of(services.push_guard().handle(parse_event(event, EcrImageActionEvent).to_fact()))


def _scan_recorder(services: ReplayServices, event: Any) -> Handled:
    return Handled.of(services.scan_recorder().handle(parse_event(event, ScanEvent).to_fact()))


def _trail_watcher(services: ReplayServices, event: Any) -> Handled:
    return Handled.of(services.trail_watcher().handle(parse_event(event, EcrApiCallEvent).to_fact()))


def _audit_watcher(services: ReplayServices, event: Any) -> Handled:
    # As functions/audit_watcher/app.py: the envelope parsed with Powertools' model, read, then checked.
    envelope = parse_event(event if "awslogs" in event else subscription_envelope(event), SubscriptionDelivery)
    home = services.audit_home()
    data = envelope.awslogs.decoded_data
    if home.account is None and _ACCOUNT_RE.fullmatch(data.owner):
        # Without the stack's account, a member's cluster would take its bare name: the central account's
        # cluster of the same name (its usage, rollouts and findings) would absorb it.
        raise usage_error(
            f"a delivery of {data.logGroup[:200]!r} comes from account {data.owner}, and the stack's own account "
            "is not known: set TAGWARDEN_ACCOUNT_ID or pass --stack-name, so that clusters of other accounts "
            "keep their account in their name"
        )
    batch = read_batch(envelope, home)
    return Handled.of_audit(batch, services.audit_watcher().handle(batch))


ROUTES: tuple[Route, ...] = (
    Route(
        "push-guard",
        _eventbridge(
            ("aws.ecr", "ECR Image Action"),
            ("aws.ecr", "ECR Pull Through Cache Action"),
            ("aws.ecr", "ECR Replication Action"),
        ),
        _push_guard,
    ),
    Route(
        "scan-recorder",
        _eventbridge(
            ("aws.ecr", "ECR Image Scan"),
            ("aws.inspector2", "Inspector2 Scan"),
            ("aws.inspector2", "Inspector2 Finding"),
        ),
        _scan_recorder,
    ),
    Route("audit-watcher", _audit_delivery, _audit_watcher),
    Route("trail-watcher", _eventbridge(("aws.ecr", "AWS API Call via CloudTrail")), _trail_watcher),
)


def subscription_envelope(data: Mapping[str, Any]) -> dict[str, Any]:
    """Decoded subscription data as CloudWatch Logs hands it to Lambda: base64 of gzip of the JSON."""
    compressed = gzip.compress(json.dumps(data, separators=(",", ":")).encode("utf-8"), mtime=0)
    return {"awslogs": {"data": base64.b64encode(compressed).decode("ascii")}}


def audit_log_data(cluster: str, lines: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
    """Raw audit lines (with their positions in the file) as the subscription data of the cluster's audit log."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "",  # the account: not known from the lines, so the cluster is named as the stack's own
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": "kube-apiserver-audit-replay",
        "subscriptionFilters": [],
        "logEvents": [
            {
                "id": line["auditID"] if isinstance(line.get("auditID"), str) else str(position),
                "timestamp": _received_ms(line),
                "message": json.dumps(line, separators=(",", ":")),
            }
            for position, line in lines
        ],
    }


def _received_ms(line: Mapping[str, Any]) -> int:
    """When kube-apiserver received the request, as the log event's time (0 when the line does not say)."""
    try:
        return int(datetime.fromisoformat(line["requestReceivedTimestamp"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return 0


def validate_cluster(name: str) -> str:
    """An EKS cluster name for `--cluster`, or a usage error."""
    if not _CLUSTER_NAME_RE.fullmatch(name):
        raise usage_error(f"--cluster: {name!r} is not an EKS cluster name (letters, digits, - and _; 1 to 100)")
    return name


def deliveries(
    path: Path, events: Sequence[Any], cluster: str | None, lines_per_delivery: int = AUDIT_LINES_PER_DELIVERY
) -> list[tuple[str, Any]]:
    """The file's events to replay, in order, each with its origin (`file#position`).

    Each run of consecutive raw audit lines becomes subscription envelopes of at most `lines_per_delivery`
    lines from the audit log of `cluster` (origin `file#first-last`): the audit watcher checks them in one
    `handle` per delivery, as it would live. Raw lines need the cluster; without one, a usage error.
    """
    replayable: list[tuple[str, Any]] = []
    numbered = enumerate(events, start=1)
    for raw, run in itertools.groupby(numbered, key=lambda numbered_event: is_audit_line(numbered_event[1])):
        if not raw:
            replayable.extend((f"{path}#{position}", event) for position, event in run)
            continue
        lines = list(run)
        if cluster is None:
            raise usage_error(
                f"{path}#{lines[0][0]}: raw Kubernetes audit lines need --cluster NAME, the EKS cluster they come from"
            )
        for start in range(0, len(lines), lines_per_delivery):
            chunk = lines[start : start + lines_per_delivery]
            first, last = chunk[0][0], chunk[-1][0]
            origin = f"{path}#{first}" if first == last else f"{path}#{first}-{last}"
            replayable.append((origin, subscription_envelope(audit_log_data(cluster, chunk))))
    return replayable


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replaying one event did."""

    origin: str  # file#position, or file#first-last for a delivery of raw audit lines
    function: str | None
    event_id: str | None
    outcome: str
    alerts: tuple[str, ...] = ()
    ok: bool = True
    audit: Mapping[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON form (`audit`: the audit watcher's result for a delivery, as its handler returns it)."""
        return {
            "event": self.origin,
            "function": self.function,
            "event_id": self.event_id,
            "outcome": self.outcome,
            "alerts": list(self.alerts),
            "ok": self.ok,
            "audit": dict(self.audit) if self.audit is not None else None,
        }


def read_events(path: Path) -> list[Any]:
    """The events a file holds: one JSON event, a JSON list of events, or one JSON event per line.

    A file without any event (empty, blank lines, `[]`) is a usage error: most likely the wrong file, or a
    recording that failed, and a replay that does nothing must not look like one that went well.
    """
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
    else:
        events = loaded if isinstance(loaded, list) else [loaded]
    if not events:
        raise usage_error(f"{path}: no events to replay (the file is empty or holds an empty list)")
    return events


def replay(origin: str, event: Any, services: ReplayServices, routes: Sequence[Route] = ROUTES) -> Replayed:
    """Feed one recorded event to the function it belongs to, as its handler would."""
    if isinstance(event, dict) and isinstance(event.get("requestPayload"), dict) and "requestContext" in event:
        # A record from a function's on-failure destination: the event is its request payload.
        event = event["requestPayload"]
    if not isinstance(event, dict):
        return Replayed(origin, None, None, f"unsupported (a JSON {type(event).__name__}, not an event)", ok=False)
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    route = next((r for r in routes if r.accepts(event)), None)
    if route is None:
        return Replayed(origin, None, event_id, f"unsupported ({_kind(event)})", ok=False)
    try:
        handled = route.handle(services, event)
    except (InvalidEventError, InvalidReferenceError) as error:
        return Replayed(origin, route.function, event_id, f"invalid: {error}", ok=False)
    return Replayed(
        origin, route.function, event_id or handled.event_id, handled.outcome, handled.alerts, audit=handled.audit
    )


def _kind(event: Mapping[str, Any]) -> str:
    if "apiVersion" in event or "kind" in event:
        return f"apiVersion {event.get('apiVersion')!r}, kind {event.get('kind')!r}"
    return f"source {event.get('source')!r}, detail-type {event.get('detail-type')!r}"
