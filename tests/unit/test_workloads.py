"""Pods and Jobs are grouped with the workload that owns them; usage maps stay bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tagwarden.domain.workloads import MAX_SITES_KEPT, Workload, stale_sites, workload_of_pod

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("api-7d9f8c6b5d-x2k9p", "api"),  # Deployment
        ("node-exporter-7xk2p", "node-exporter"),  # DaemonSet
        ("db-0", "db"),  # StatefulSet
        ("nightly-report-29512345-abcde", "nightly-report"),  # CronJob's Job's pod
        ("standalone", "standalone"),
    ],
)
def test_pods_are_grouped_with_their_workload(pod: str, workload: str) -> None:
    assert workload_of_pod(pod) == workload


def test_every_run_of_a_cronjob_is_one_location() -> None:
    runs = [Workload("c", "ns", "Job", f"nightly-report-2951234{n}") for n in range(3)]
    pods = [Workload("c", "ns", "Pod", f"nightly-report-2951234{n}-abcd{n}") for n in range(3)]
    assert {w.location for w in runs + pods} == {"c/ns/nightly-report"}


def test_usage_forgets_stale_sites_and_keeps_the_most_recent() -> None:
    in_use = {f"c/ns/w{n}": NOW - timedelta(minutes=n) for n in range(MAX_SITES_KEPT)}
    in_use["c/ns/old"] = NOW - timedelta(days=40)
    forget = stale_sites(in_use, NOW, adding=1)
    assert set(forget) == {"c/ns/old", f"c/ns/w{MAX_SITES_KEPT - 1}"}
