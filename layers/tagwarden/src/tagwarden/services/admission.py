"""The admission webhook's service: read the ledger once, decide every image, log each decision.

Read -> decide -> log; nothing is written and nothing published on this path (a review must answer in
milliseconds, and the audit watcher alerts on what runs). Every decision is one JSON line on stdout that
is also a CloudWatch embedded-metric document (`AdmissionDecisions`, by `decision` and `mode`), so the
log pipeline that ships the pod's logs turns it into a metric without another call.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tagwarden.clock import iso, utcnow
from tagwarden.domain.admission import (
    AdmissionPolicy,
    AdmissionSubject,
    AdmissionVerdict,
    AdmissionView,
    Mode,
    clip,
    decide,
    ledger_reads,
    too_many_images,
    words,
)
from tagwarden.domain.deployments import DigestKey
from tagwarden.domain.tags import TagRef
from tagwarden.ports import AdmissionLedger, LedgerUnavailableError

METRICS_NAMESPACE = "Tagwarden"
DECISION_METRIC = "AdmissionDecisions"
LEDGER_FAILURE_METRIC = "AdmissionLedgerFailures"
MALFORMED_METRIC = "AdmissionMalformedReviews"
FAILURE_METRIC = "AdmissionFailedReviews"


@dataclass(frozen=True, slots=True)
class ReviewContext:
    """What the logs say about a review besides its decisions."""

    uid: str
    dry_run: bool = False


LineWriter = Callable[[str], None]


def stdout_line(line: str) -> None:
    """Write one log line to stdout (what the container runtime ships)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class AdmissionService:
    """Decides AdmissionReviews against the ledger; thread-safe (the server answers reviews in parallel)."""

    def __init__(
        self,
        ledger: AdmissionLedger,
        policy: AdmissionPolicy,
        write_line: LineWriter = stdout_line,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._write = write_line

    @property
    def policy(self) -> AdmissionPolicy:
        """How decisions are applied (scope, exempt namespaces, template pinning)."""
        return self._policy

    def review(self, subject: AdmissionSubject, mode: Mode, context: ReviewContext) -> AdmissionVerdict:
        """Decide the object's images: one ledger read (none when no image is judged), one log line each."""
        view: AdmissionView | None = AdmissionView({}, {})
        if subject.namespace not in self._policy.exempt_namespaces:
            tags, digests = ledger_reads(subject, self._policy.scope)
            # An object naming too many images is refused as such (decide), not read.
            if (tags or digests) and not too_many_images(subject, self._policy.scope):
                view = self._read(tags, digests, context)
        verdict = decide(subject, view, self._policy, mode)
        for decision in verdict.decisions:
            self._log(
                {
                    "message": "admission decision",
                    "uid": context.uid,
                    "dry_run": context.dry_run,
                    "mode": mode.value,
                    "namespace": subject.namespace,
                    "kind": subject.kind,
                    "name": subject.name,
                    "operation": subject.operation,
                    "container": clip(decision.slot.container),
                    "path": decision.slot.path,
                    "image": clip(decision.slot.text),
                    "digest": decision.digest,
                    "pinned": decision.pinned,
                    "decision": decision.decision.value,
                    "problem": words(decision.problem) if decision.problem else None,
                    "reason": decision.reason,
                },
                metric=(DECISION_METRIC, {"decision": decision.decision.value, "mode": mode.value}),
            )
        return verdict

    def log_rejected(self, problem: str) -> None:
        """A body that is not an AdmissionReview v1 request (answered 400), counted as a metric."""
        self._log(
            {"message": "malformed review", "level": "WARNING", "problem": problem[:500]},
            metric=(MALFORMED_METRIC, {}),
        )

    def log_failure(self, problem: str) -> None:
        """A review the server failed to answer (a bug: answered 500), counted as a metric."""
        self._log({"message": "review failed", "level": "ERROR", "problem": problem}, metric=(FAILURE_METRIC, {}))

    def log_connection_error(self, problem: str) -> None:
        """A connection that failed before a review was read (TLS handshake, client gone)."""
        self._log({"message": "connection error", "level": "WARNING", "problem": problem})

    def log_event(self, message: str, **fields: Any) -> None:
        """A lifecycle line of the server (listening, draining, stopped)."""
        self._log({"message": message, **fields})

    def _read(self, tags: set[TagRef], digests: set[DigestKey], context: ReviewContext) -> AdmissionView | None:
        try:
            view = self._ledger.read_admission_view(tags, digests)
        except LedgerUnavailableError as error:
            # Enforce denies, warn allows with a warning: the decision says so for each image.
            self._log(
                {"message": "ledger unavailable", "level": "ERROR", "uid": context.uid, "error": str(error)[:500]},
                metric=(LEDGER_FAILURE_METRIC, {}),
            )
            return None
        return view

    def _log(self, fields: dict[str, Any], metric: tuple[str, dict[str, str]] | None = None) -> None:
        now = utcnow()
        line: dict[str, Any] = {"level": "INFO", "timestamp": iso(now), "service": "tagwarden-admission", **fields}
        if metric is not None:
            name, dimensions = metric
            line.update(dimensions)
            line[name] = 1
            line["_aws"] = {
                "Timestamp": int(now.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [sorted(dimensions)] if dimensions else [[]],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            }
        self._write(json.dumps(line, separators=(",", ":"), default=str))
