"""Figure 11: alerts on a benign CI/CD day of multi-platform releases (issue 10's goal: 0 above LOW).

The day of `tests/support/multiarch_day.py` (three multi-platform builds with attestations, `latest`
following each release, platform scans before or after the index pushes, attestation scans FAILED,
deployments whose kubelets report the index or a platform digest, a workload pinned to a platform digest),
through the real push guard, scan recorder and audit watcher on moto, with the ECR events delivered in a
different order for each seed. Alerts are read from the alerts topic's subscriber queue and counted by
severity; anything above LOW is listed with its type and tag.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import boto3
from tagwarden.domain.severity import Severity

from benchmarks.harness import deployed
from benchmarks.report import table
from tests.support.multiarch_day import benign_day, deliver
from tests.support.stack import REGION

SEEDS = tuple(range(1, 11))
GOAL_ABOVE_LOW = 0


@dataclass(frozen=True, slots=True)
class Day:
    """One benign day, its ECR events delivered in the order `seed` gives."""

    seed: int
    events: int
    audit_deliveries: int
    by_severity: Counter[Severity]
    loud: list[str] = field(default_factory=list)

    @property
    def above_low(self) -> int:
        return sum(n for severity, n in self.by_severity.items() if severity.rank > Severity.LOW.rank)


def run_day(seed: int) -> Day:
    """A fresh moto account and stack, the day's builds in its ECR, and every event through the handlers."""
    with deployed() as deployment:
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName="shop/api")
        day = benign_day(ecr)
        deliver(
            day.ecr_events,
            lambda event: deployment.invoke("push_guard", event),
            lambda event: deployment.invoke("scan_recorder", event),
            seed,
        )
        for delivery in day.audit_deliveries:
            deployment.invoke("audit_watcher", delivery)
        received = deployment.stack.received_alerts()
    loud = [
        f"{r.alert.type.value} {r.alert.severity.value} {r.alert.tag or r.alert.current_digest}"
        for r in received
        if r.alert.severity.rank > Severity.LOW.rank
    ]
    by_severity = Counter(r.alert.severity for r in received)
    return Day(seed, len(day.ecr_events), len(day.audit_deliveries), by_severity, loud)


def measure(seeds: tuple[int, ...] = SEEDS) -> list[Day]:
    """The day once per seed (each in its own moto account)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    return [run_day(seed) for seed in seeds]


def render(days: list[Day]) -> str:
    """Alerts by severity per seed, the total, and the verdict against the goal."""
    severities = sorted(Severity, key=lambda s: s.rank)
    rows: list[list[str | int]] = [
        [f"seed {d.seed}", d.events, d.audit_deliveries, *(d.by_severity[s] for s in severities), d.above_low]
        for d in days
    ]
    total: Counter[Severity] = Counter()
    for d in days:
        total.update(d.by_severity)
    rows.append(
        [
            "all",
            sum(d.events for d in days),
            sum(d.audit_deliveries for d in days),
            *(total[s] for s in severities),
            sum(d.above_low for d in days),
        ]
    )
    headers = ["delivery order", "ECR events", "audit deliveries", *(s.value for s in severities), "above LOW"]
    lines = [table(headers, rows)]
    loud = [f"  seed {d.seed}: {alert}" for d in days for alert in d.loud]
    above = sum(d.above_low for d in days)
    verdict = "goal met" if above <= GOAL_ABOVE_LOW else "GOAL MISSED"
    lines.append(f"\nAlerts above LOW over {len(days)} days: {above} (goal {GOAL_ABOVE_LOW}): {verdict}")
    lines.extend(loud)
    return "\n".join(lines)


def quiet(days: list[Day]) -> bool:
    """The goal: no alert above LOW on any of the days."""
    return all(d.above_low <= GOAL_ABOVE_LOW for d in days)
