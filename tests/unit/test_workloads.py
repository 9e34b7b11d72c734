"""Pods and Jobs are grouped with the workload that owns them; usage maps stay bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tagwarden.domain.workloads import (
    MAX_ROLLOUTS_KEPT,
    MAX_SITES_KEPT,
    ROLLOUT_WINDOW,
    Sighting,
    Workload,
    cluster_id,
    recent_sites,
    rollout_starts,
    stale_sites,
    workload_of_pod,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("api-7d9f8c6b5d-x2k9p", "api"),  # Deployment
        ("node-exporter-7xk2p", "node-exporter"),  # DaemonSet
        ("db-0", "db"),  # StatefulSet
        ("nightly-report-29512345-abcde", "nightly-report"),  # CronJob's Job's pod
        ("standalone", "standalone"),
        # Known only by generateName (a create at level Request): the same workload as the named pod.
        ("api-7d9f8c6b5d-", "api"),
        ("node-exporter-", "node-exporter"),
        ("nightly-report-29512345-", "nightly-report"),
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


def minutes(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


def test_a_rollout_starts_with_new_content_and_groups_everything_after_it() -> None:
    starts, after = rollout_starts({}, [Sighting("A", minutes(0), True), Sighting("A", minutes(5), False)])
    assert starts == [minutes(0), minutes(0)]
    assert after == {"A": minutes(0)}


def test_a_spec_write_after_other_content_is_a_new_rollout_and_a_kubelet_report_is_not() -> None:
    known = {"A": minutes(0), "B": minutes(10)}
    starts, after = rollout_starts(
        known, [Sighting("A", minutes(12), False), Sighting("A", minutes(20), True), Sighting("A", minutes(25), True)]
    )
    assert starts == [minutes(0), minutes(20), minutes(20)]
    assert after == {"A": minutes(20), "B": minutes(10)}


def test_sightings_are_taken_in_time_order_and_old_lines_join_the_known_rollout() -> None:
    starts, _ = rollout_starts({"A": minutes(30)}, [Sighting("B", minutes(20), True), Sighting("A", minutes(10), True)])
    assert starts == [minutes(20), minutes(30)]


def test_the_rollout_window_renews_a_finding_and_bounds_what_is_kept() -> None:
    starts, _ = rollout_starts({"A": minutes(0)}, [Sighting("A", NOW + ROLLOUT_WINDOW, False)])
    assert starts == [NOW + ROLLOUT_WINDOW]
    many = [Sighting(f"C{n}", minutes(n), True) for n in range(MAX_ROLLOUTS_KEPT + 5)]
    _, after = rollout_starts({"old": NOW - ROLLOUT_WINDOW}, many)
    assert len(after) == MAX_ROLLOUTS_KEPT
    assert "old" not in after
    assert f"C{MAX_ROLLOUTS_KEPT + 4}" in after


# --- clusters of an organization -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "home", "expected"),
    [
        ("111122223333", "111122223333", "prod"),  # the stack's own cluster keeps its bare name
        ("444455556666", "111122223333", "444455556666:eu-west-1:prod"),  # a member's is qualified
        ("", "111122223333", "prod"),  # owner unknown (replayed raw lines): the stack's own
        ("444455556666", None, "prod"),  # home unknown: nothing to tell it apart from
    ],
)
def test_a_cluster_is_named_by_account_and_region_outside_the_stacks_account(
    owner: str, home: str | None, expected: str
) -> None:
    assert cluster_id("prod", owner, "eu-west-1", home) == expected


def test_two_clusters_named_alike_in_two_accounts_are_two_locations() -> None:
    central = Workload(cluster_id("prod", "111122223333", "eu-west-1", "111122223333"), "shop", "Deployment", "api")
    member = Workload(cluster_id("prod", "444455556666", "eu-west-1", "111122223333"), "shop", "Deployment", "api")

    assert central.location != member.location
    # The location still splits into cluster, namespace and workload (the usage sites of alerts).
    assert [site.cluster for site in recent_sites({member.location: NOW}, NOW)] == ["444455556666:eu-west-1:prod"]
