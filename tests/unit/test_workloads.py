"""Pods and Jobs are grouped with the workload that owns them; usage maps stay bounded."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from tagwarden.domain.workloads import (
    MAX_INTRODUCTIONS_KEPT,
    MAX_ROLLOUTS_KEPT,
    MAX_SITES_KEPT,
    MAX_STARTS_KEPT,
    ROLLOUT_WINDOW,
    Rollouts,
    Sighting,
    Workload,
    cluster_id,
    merged_rollouts,
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
    assert after.starts == {"A": minutes(0)}


def test_a_spec_write_after_other_content_is_a_new_rollout_and_a_kubelet_report_is_not() -> None:
    known = {"A": minutes(0), "B": minutes(10)}
    starts, after = rollout_starts(
        known, [Sighting("A", minutes(12), False), Sighting("A", minutes(20), True), Sighting("A", minutes(25), True)]
    )
    assert starts == [minutes(0), minutes(20), minutes(20)]
    assert after.starts == {"A": minutes(20), "B": minutes(10)}
    assert after.earlier == {"A": (minutes(0),)}


def test_sightings_are_taken_in_time_order_and_old_lines_join_the_rollout_containing_their_time() -> None:
    # A at 10 is older than A's known rollout (30) with B's rollout between them: an earlier rollout of A.
    starts, _ = rollout_starts({"A": minutes(30)}, [Sighting("B", minutes(20), True), Sighting("A", minutes(10), True)])
    assert starts == [minutes(20), minutes(10)]
    # With nothing between (a Deployment update processed after its pod creations), it joins the known rollout;
    # a kubelet report older than any known rollout of its content always does.
    starts, after = rollout_starts(
        {"A": minutes(30)}, [Sighting("A", minutes(29), True), Sighting("A", minutes(5), False)]
    )
    assert starts == [minutes(30), minutes(30)]
    assert after.starts == {"A": minutes(30)}


def test_the_rollout_window_renews_a_finding_and_bounds_what_is_kept() -> None:
    starts, _ = rollout_starts({"A": minutes(0)}, [Sighting("A", NOW + ROLLOUT_WINDOW, False)])
    assert starts == [NOW + ROLLOUT_WINDOW]
    many = [Sighting(f"C{n}", minutes(n), True) for n in range(MAX_ROLLOUTS_KEPT + 5)]
    _, after = rollout_starts({"old": NOW - ROLLOUT_WINDOW}, many)
    assert len(after.starts) == MAX_ROLLOUTS_KEPT
    assert "old" not in after.starts
    assert f"C{MAX_ROLLOUTS_KEPT + 4}" in after.starts


# --- rollouts ordered across deliveries ----------------------------------------------------------------
# EKS runs two or more API servers, each with its own log stream; a delivery holds one stream's lines, so a
# rollback's lines (A, then B, then A again) may be processed in any order, split across deliveries.

STORY = [
    Sighting("A", minutes(0), True),  # rollout to A
    Sighting("A", minutes(0) + timedelta(seconds=4), True),  # its pod creation
    Sighting("B", minutes(10), True),  # rollout to B
    Sighting("A", minutes(12), False),  # an old pod of A still reporting (kubelet): not a rollout of A
    Sighting("A", minutes(20), True),  # rollback to A
    Sighting("A", minutes(20) + timedelta(seconds=3), True),  # its pod creation
]
# A's next line, after every delivery of the story: where a late split is alerted.
NEXT_LINE_OF_A = Sighting("A", minutes(30), False)


def _process(deliveries: list[list[Sighting]]) -> tuple[set[tuple[str, datetime]], Rollouts]:
    """Deliveries processed one after another against a stored record, as the audit watcher does; the
    findings are the distinct (content, rollout start) pairs its lines are assigned to."""
    record = Rollouts()
    findings: set[tuple[str, datetime]] = set()
    for delivery in deliveries:
        starts, after = rollout_starts(record, delivery)
        findings.update((s.content, start) for s, start in zip(delivery, starts, strict=True))
        if not after.same_record(record):
            record = dataclasses.replace(after, version=record.version + 1)
    return findings, record


def _orders(story: Sequence[Sighting | Sequence[Sighting]] = STORY) -> list[list[list[Sighting]]]:
    """Every split of the story's lines between two streams (each stream's lines in one or two deliveries)
    and every processing order of those deliveries. A line may show several contents (a sequence of
    sightings: one spec write of two containers), which stay together."""
    lines = [[item] if isinstance(item, Sighting) else list(item) for item in story]
    cases: list[list[list[Sighting]]] = []
    for streams in itertools.product((0, 1), repeat=len(lines)):
        by_stream = [[line for line, n in zip(lines, streams, strict=True) if n == stream] for stream in (0, 1)]
        deliveries = [
            [s for line in part for s in line]
            for mine in by_stream
            for part in (mine[: len(mine) // 2], mine[len(mine) // 2 :])
            if part
        ]
        cases.extend(list(order) for order in itertools.permutations(deliveries))
    return cases


def _period(moment: datetime) -> str:
    """Which of the story's rollouts was in force at `moment`: A's, B's, or the rollback to A."""
    return "first A" if moment < minutes(10) else "B" if moment < minutes(20) else "rollback"


@pytest.mark.parametrize(("controller_pods", "fewer"), [(False, 32), (True, 24)])
def test_every_processing_order_of_a_rollback_gives_the_same_rollouts_and_one_finding_per_rollout(
    controller_pods: bool, fewer: int
) -> None:
    # Pod creations are spec writes when a person makes them, and like kubelet lines when a ReplicaSet
    # controller does (the usual case): the same story either way.
    story = [dataclasses.replace(s, introduces=False) if controller_pods and s.seen_at.second else s for s in STORY]
    orders = _orders(story)
    assert len(orders) == 1276
    ideal = 0
    for order in orders:
        findings, record = _process([*order, [NEXT_LINE_OF_A]])
        # The same rollouts whatever the order (a rollout starts at its first spec write processed)
        assert {c: _period(t) for c, t in record.starts.items()} == {"A": "rollback", "B": "B"}, order
        assert {c: [_period(t) for t in ts] for c, ts in record.earlier.items()} == {"A": ["first A"]}, order
        # One finding per rollout, and one per period of the story at most. A finding raised by a kubelet line
        # of A processed before A's spec write (an old pod's status, 10:12) is named by that line's start,
        # which the spec write's start then keeps as its alias: it is the finding of A's first rollout.
        named = {(c, alias): start for c, aliases in record.aliases.items() for start, alias in aliases.items()}
        periods = [(content, _period(named.get((content, start), start))) for content, start in findings]
        assert len(periods) == len(findings) == len(set(periods)), order
        found = set(periods)
        # B's rollout and the rollback always alert (the rollback on A's next line at the latest)
        assert {("B", "B"), ("A", "rollback")} <= found, order
        lines_of_a = [s for delivery in order for s in delivery if s.content == "A"]
        # One fewer only when the rollback was processed first, and A's first rollout before B's: nothing told
        # A's two rollouts apart then, so the rollback's alert stands for both.
        assert ("A", "first A") in found or lines_of_a[0].seen_at >= minutes(20), order
        ideal += found == {("A", "first A"), ("B", "B"), ("A", "rollback")}
    assert ideal == len(orders) - fewer  # 1244 (1252) of 1276 orders


def _story(contents: str) -> tuple[list[Sighting], dict[str, list[datetime]]]:
    """Rollouts every 10 minutes of `contents` (a spec write, its pod creation 4 s later), the previous
    content's old pod reporting 2 minutes into each, and the true starts per content."""
    lines: list[Sighting] = []
    truth: dict[str, list[datetime]] = {}
    for n, content in enumerate(contents):
        lines += [
            Sighting(content, minutes(10 * n), True),
            Sighting(content, minutes(10 * n) + timedelta(seconds=4), True),
        ]
        if n:
            lines.append(Sighting(contents[n - 1], minutes(10 * n + 2), False))
        truth.setdefault(content, []).append(minutes(10 * n))
    return sorted(lines, key=lambda s: s.seen_at), truth


def _sampled_orders(lines: list[Sighting], limit: int) -> list[list[list[Sighting]]]:
    """Splits of `lines` between two streams (each in one or two deliveries), three processing orders each
    (seeded), up to `limit` cases: every order of a longer story is too many."""
    rng = random.Random(7)
    splits = list(itertools.product((0, 1), repeat=len(lines)))
    rng.shuffle(splits)
    cases: list[list[list[Sighting]]] = []
    for streams in splits:
        by_stream = [[s for s, n in zip(lines, streams, strict=True) if n == stream] for stream in (0, 1)]
        deliveries = [d for part in by_stream for d in (part[: len(part) // 2], part[len(part) // 2 :]) if d]
        orders = list(itertools.permutations(deliveries))
        cases.extend(list(order) for order in rng.sample(orders, min(3, len(orders))))
        if len(cases) >= limit:
            break
    return cases


@pytest.mark.parametrize(("contents", "unalerted"), [("ABAB", 14), ("ABCA", 0), ("ABACA", 108)])
def test_longer_rollback_stories_keep_the_true_rollouts_in_every_sampled_order(contents: str, unalerted: int) -> None:
    # A, B, A, B: B at 10 and A at 20 each joined a later rollout of their content while the other was a
    # plain spec write; each would count only if the other did, and both were lost for good.
    lines, truth = _story(contents)

    def rollout(moment: datetime) -> int:  # a start may be a pod creation's, seconds after its spec write
        return (moment - minutes(0)) // timedelta(minutes=10)

    expected = {c: [rollout(t) for t in times] for c, times in truth.items()}
    rollouts = {(c, n) for c, ns in expected.items() for n in ns}
    missed = 0
    for order in _sampled_orders(lines, 1500):
        # Each content's next line, 30 minutes after the story: where a split learned late is alerted
        after = [[Sighting(c, minutes(10 * len(contents) + 30), False)] for c in sorted(truth)]
        findings, record = _process([*order, *after])
        assert {c: [rollout(t) for t in record.all_starts(c)] for c in record.starts} == expected, order
        # Never an alert more: a finding named by a kubelet line's start belongs to the rollout that took it
        named = {(c, alias): start for c, aliases in record.aliases.items() for start, alias in aliases.items()}
        alerted = [(c, rollout(named.get((c, start), start))) for c, start in findings]
        assert len(alerted) == len(set(alerted)) and set(alerted) <= rollouts, order
        # A rollout never alerted: the README's "one fewer" (a rollback processed before the rollout it
        # returns from) and a rollout split late that is no longer its content's latest (A, B, A, C, A)
        missed += set(alerted) != rollouts
    assert missed == unalerted  # of 1500 sampled orders


def test_a_rollout_split_late_that_is_not_its_contents_latest_is_kept_but_not_alerted() -> None:
    """Known and documented (README, "Rollouts across deliveries"): A at 0, B at 10, A at 20, C at 30, A at 40,
    where C's rollout is learned after every line of A's rollout at 20: the record learns it, but a later line
    of A joins A's latest rollout (40), so nothing alerts the one at 20."""

    def s(content: str, minute: float, spec: bool = True) -> Sighting:
        return Sighting(content, minutes(0) + timedelta(minutes=minute), spec)

    findings, record = _process(
        [
            [s("A", 0), s("A", 0.07), s("B", 10), s("B", 10.07)],
            [s("A", 32, False), s("A", 40), s("A", 40.07)],
            [s("A", 20), s("A", 20.07)],
            [s("A", 12, False), s("B", 22, False), s("C", 30), s("C", 30.07), s("C", 42, False)],
            [s("A", 70, False)],
        ]
    )
    assert record.all_starts("A") == (minutes(0), minutes(20), minutes(40))
    assert {start for content, start in findings if content == "A"} == {minutes(0), minutes(40)}


def test_another_contents_kept_spec_write_counts_as_a_rollout_between() -> None:
    # Stream X: A at 0 and B at 30; stream Y (later): B at 10 and A at 20. Each delivery alone folds its
    # second content's write into the kept rollout; together they are A, B, A, B.
    _, record = _process([[Sighting("A", minutes(0), True), Sighting("B", minutes(30), True)]])
    starts, record = rollout_starts(record, [Sighting("B", minutes(10), True), Sighting("A", minutes(20), True)])
    assert starts == [minutes(10), minutes(20)]
    assert {c: list(record.all_starts(c)) for c in record.starts} == {
        "A": [minutes(0), minutes(20)],
        "B": [minutes(10), minutes(30)],
    }


# An unchanged sidecar S deployed with each new main image: A1+S at 0, A2+S at 60, back to A1+S at 120 (one
# spec write each, so S's writes share their instant with the main image's), and S's pods reporting.
SIDECAR_STORY: list[Sighting | Sequence[Sighting]] = [
    (Sighting("A1", minutes(0), True), Sighting("S", minutes(0), True)),
    (Sighting("A2", minutes(60), True), Sighting("S", minutes(60), True)),
    Sighting("S", minutes(90), False),
    (Sighting("A1", minutes(120), True), Sighting("S", minutes(120), True)),
    Sighting("S", minutes(150), False),
]


def test_an_unchanged_sidecar_is_one_rollout_whatever_the_main_image_does_in_every_order() -> None:
    # Another content's rollout begun by the same spec write did not replace S: no rollback to S.
    for order in _orders(SIDECAR_STORY):
        findings, record = _process(order)
        assert (len(record.all_starts("A1")), len(record.all_starts("A2")), len(record.all_starts("S"))) == (2, 1, 1)
        # One finding of S (whichever of S's lines was processed first names it)
        assert len({start for content, start in findings if content == "S"}) == 1, order


def test_a_sidecar_changed_and_changed_back_is_a_rollback() -> None:
    # A1+S at 0, A1+S2 at 60 (the sidecar upgraded), A1+S at 120 (and back): S's second rollout
    story: list[Sighting | Sequence[Sighting]] = [
        (Sighting("A1", minutes(0), True), Sighting("S", minutes(0), True)),
        (Sighting("A1", minutes(60), True), Sighting("S2", minutes(60), True)),
        (Sighting("A1", minutes(120), True), Sighting("S", minutes(120), True)),
        Sighting("S", minutes(150), False),
    ]
    for order in _orders(story):
        _, record = _process(order)
        assert (record.all_starts("S"), record.all_starts("S2")) == ((minutes(0), minutes(120)), (minutes(60),)), order
        # A1, written with each, is one rollout; two when its write at 120 was processed before the one at 60
        # (a kept start stays a start: one alert more, never one fewer)
        assert 1 <= len(record.all_starts("A1")) <= 2, order


def test_a_late_rollout_between_splits_the_rollout_at_the_first_spec_write_after_it() -> None:
    # Given stream X's delivery processed first: A at 0, and A again at 20 (folded into A's rollout: no B yet)
    starts, record = rollout_starts(Rollouts(), [Sighting("A", minutes(0), True), Sighting("A", minutes(20), True)])
    assert starts == [minutes(0), minutes(0)]
    assert record.introductions == {"A": (minutes(20),)}
    # When stream Y's delivery brings B at 10 and lines of A from both sides of the rollback
    starts, record = rollout_starts(
        record, [Sighting("B", minutes(10), True), Sighting("A", minutes(5), False), Sighting("A", minutes(25), False)]
    )
    # Then A's rollout is split at 20 and each line joins the rollout containing its time
    assert starts == [minutes(10), minutes(0), minutes(20)]
    assert (record.starts, record.earlier) == ({"A": minutes(20), "B": minutes(10)}, {"A": (minutes(0),)})
    assert record.introductions == {}


def test_replaying_a_delivery_changes_nothing() -> None:
    _, record = rollout_starts(Rollouts(), STORY)
    _, again = rollout_starts(record, STORY)
    assert again.same_record(record)


def test_a_record_of_the_first_format_is_read_as_latest_starts_only() -> None:
    starts, after = rollout_starts({"A": minutes(0), "B": minutes(10)}, [Sighting("A", minutes(20), True)])
    assert starts == [minutes(20)]
    assert (after.starts, after.earlier) == ({"A": minutes(20), "B": minutes(10)}, {"A": (minutes(0),)})


def test_two_writers_records_merge_into_the_split() -> None:
    _, ours = rollout_starts(Rollouts(), [Sighting("A", minutes(0), True), Sighting("A", minutes(20), True)])
    _, theirs = rollout_starts(Rollouts(), [Sighting("B", minutes(10), True)])
    merged = merged_rollouts(ours, Rollouts(theirs.starts, 3, theirs.earlier, theirs.introductions))
    assert (merged.starts, merged.earlier) == ({"A": minutes(20), "B": minutes(10)}, {"A": (minutes(0),)})
    assert merged.version == 3


def test_spec_writes_of_one_rollout_are_kept_once_and_everything_kept_is_bounded() -> None:
    burst = [Sighting("A", minutes(0) + timedelta(seconds=n), True) for n in range(50)]
    _, record = rollout_starts(Rollouts(), burst)
    assert record.introductions == {}  # the pod creations of one rollout, within INTRODUCTION_SPACING
    churn = [Sighting(f"C{n % (MAX_ROLLOUTS_KEPT + 10)}", minutes(n // 3), n % 2 == 0) for n in range(2000)]
    _, record = rollout_starts(Rollouts(), churn)
    assert len(record.starts) == MAX_ROLLOUTS_KEPT
    assert max(len(times) for times in record.earlier.values()) == MAX_STARTS_KEPT - 1
    assert all(len(times) <= MAX_INTRODUCTIONS_KEPT for times in record.introductions.values())


def test_a_stored_record_and_a_delivery_already_applied_change_nothing_when_replayed() -> None:
    """Random deliveries within a few hours (seeded): a record that changes on replay would be written by every
    delivery, and the quick path taken when nothing changes must agree with the replay."""
    rng = random.Random(7)
    offsets = [0, 5, 30, 61, 90, 600, 1200, 1260, 3600, 7200]
    quick = 0
    for _ in range(1500):
        record = Rollouts()
        for _ in range(rng.randrange(1, 6)):
            delivery = [
                Sighting(
                    rng.choice("ABC"),
                    NOW + timedelta(seconds=rng.choice(offsets) + rng.randrange(3)),
                    rng.random() < 0.6,
                )
                for _ in range(rng.randrange(1, 5))
            ]
            starts, after = rollout_starts(record, delivery)
            quick += after is record
            assert rollout_starts(after, ())[1].same_record(after)
            record = after if after.same_record(record) else dataclasses.replace(after, version=record.version + 1)
            again, replayed = rollout_starts(record, delivery)
            assert replayed.same_record(record)
            assert again == starts  # a delivery processed twice alerts with the same ids
    assert quick > 100


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
