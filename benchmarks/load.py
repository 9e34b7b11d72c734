"""Figure 5: load on DynamoDB Local: several containers deliver duplicated, shuffled pushes and racing scans.

Afterwards the ledger is audited: every push must be in its tag's history exactly once, the history must be
one chain in time order, each pointer must name its tag's newest push, and every real move must be
covered by exactly one alert id. The figures are printed; the verdicts too.

Out of order, a move can turn out to be the same change of content into the same push that an alert
already reported (a late push of that content landed before it): it is not reported twice, since an
alert id is never published twice. So alerts for moves can be fewer than the moves, and every move is
covered by one.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.report import Cell, table
from tests.support.containers import deliver_concurrently, local_services
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.stack import Stack, create_stack

TAGS = 20
PUSHES_PER_TAG = 25
CONTAINERS = 4
SEED = 5
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"


@dataclass(frozen=True, slots=True)
class LoadRun:
    """What was delivered and what the ledger holds afterwards."""

    deliveries: int
    pushes: int
    scans: int
    seconds: float
    outcomes: Counter[str]
    moves: int
    move_alerts: int
    scan_time_alerts: int
    alerts_duplicated: int
    lost: int
    duplicated: int
    broken_chains: int
    wrong_pointers: int
    unalerted_moves: int


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _events(rng: random.Random) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    pushes: dict[str, list[dict[str, Any]]] = {}
    scans: list[dict[str, Any]] = []
    for t in range(TAGS):
        tag = f"load-{t}"
        moments = sorted(START + timedelta(seconds=rng.randrange(0, 120)) for _ in range(PUSHES_PER_TAG))
        digests = [_digest(1000 * t + rng.randrange(0, 12)) for _ in moments]
        pushes[tag] = [
            ecr_image_action(tag=tag, digest=d, time=f"{m:%Y-%m-%dT%H:%M:%SZ}")
            for d, m in zip(digests, moments, strict=True)
        ]
        for d in sorted(set(digests))[:4]:  # some digests get scanned while their tags move
            scans.append(ecr_scan(digest=d, tags=[tag], time=f"{START + timedelta(seconds=60):%Y-%m-%dT%H:%M:%SZ}"))
    return pushes, scans


def _audit(stack: Stack, pushes: dict[str, list[dict[str, Any]]]) -> tuple[int, int, int, int, int, int]:
    items = stack.items()
    lost = duplicated = broken = wrong = moves = unalerted = 0
    for tag, events in pushes.items():
        pk = f"TAG#{REGISTRY}/shop/api:{tag}"
        history = sorted(
            (i for i in items if i["pk"]["S"] == pk and i["sk"]["S"].startswith("MOVE#")), key=lambda i: i["sk"]["S"]
        )
        recorded = Counter(i["event_id"]["S"] for i in history)
        lost += sum(1 for e in events if recorded[e["id"]] == 0)
        duplicated += sum(count - 1 for count in recorded.values() if count > 1)
        chain = [i.get("previous_digest", {}).get("S") for i in history]
        broken += int(chain != [None] + [i["digest"]["S"] for i in history[:-1]])
        unalerted += sum(
            1
            for previous, entry in itertools.pairwise(history)
            if previous["digest"]["S"] != entry["digest"]["S"] and not entry["move_alerted"]["BOOL"]
        )
        ordered = sorted(events, key=lambda e: (e["time"], e["id"]))
        pointer = next(i for i in items if i["pk"]["S"] == pk and i["sk"]["S"] == "POINTER")
        wrong += int(pointer["digest"]["S"] != ordered[-1]["detail"]["image-digest"])
        digests = [e["detail"]["image-digest"] for e in ordered]
        moves += sum(1 for a, b in itertools.pairwise(digests) if a != b)
    return moves, lost, duplicated, broken, wrong, unalerted


def measure() -> LoadRun:
    """Deliver every event twice, shuffled, from several containers; then audit the ledger."""
    rng = random.Random(SEED)
    pushes, scans = _events(rng)
    deliveries = [e for events in pushes.values() for e in events] + scans
    deliveries = deliveries + deliveries
    rng.shuffle(deliveries)
    with local_services():
        stack = create_stack("tagwarden-load")
        started = time.perf_counter()
        outcomes = Counter(deliver_concurrently(stack, deliveries, CONTAINERS))
        seconds = time.perf_counter() - started
        moves, lost, duplicated, broken, wrong, unalerted = _audit(stack, pushes)
        alerts = stack.received_alerts()
    ids = Counter(a.alert.alert_id for a in alerts)
    scan_ids = {event["id"] for event in scans}
    scan_time = sum(1 for a in alerts if a.alert.evidence and a.alert.evidence[0] in scan_ids)
    return LoadRun(
        deliveries=len(deliveries),
        pushes=sum(len(e) for e in pushes.values()),
        scans=len(scans),
        seconds=seconds,
        outcomes=outcomes,
        moves=moves,
        move_alerts=len(alerts) - scan_time,
        scan_time_alerts=scan_time,
        alerts_duplicated=sum(count - 1 for count in ids.values()),
        lost=lost,
        duplicated=duplicated,
        broken_chains=broken,
        wrong_pointers=wrong,
        unalerted_moves=unalerted,
    )


def render(run: LoadRun) -> str:
    """The figures, then the verdicts."""
    rows: list[list[Cell]] = [
        ["events (pushes + scans), each delivered twice", f"{run.pushes} + {run.scans}", f"{run.deliveries} sent"],
        ["containers (processes) delivering at once", CONTAINERS, ""],
        ["deliveries per second", run.deliveries / run.seconds, f"{run.seconds:.1f} s"],
        ["outcomes", ", ".join(f"{k} {v}" for k, v in sorted(run.outcomes.items())), ""],
        ["real moves (adjacent pushes of different content)", run.moves, ""],
        ["alerts for moves (raised by pushes)", run.move_alerts, "at most the real moves (see below)"],
        ["moves no alert covers", run.unalerted_moves, "must be 0"],
        ["alerts raised by scans (tag moved during its scan)", run.scan_time_alerts, ""],
        ["alerts published twice", run.alerts_duplicated, "must be 0"],
        ["pushes lost from history", run.lost, "must be 0"],
        ["pushes recorded twice", run.duplicated, "must be 0"],
        ["histories that are not one chain", run.broken_chains, "must be 0"],
        ["pointers not at the newest push", run.wrong_pointers, "must be 0"],
    ]  # fmt: skip
    return table(["figure", "value", "note"], rows)


def sound(run: LoadRun) -> bool:
    """Nothing lost, nothing doubled, every history a chain, every pointer current."""
    broken = run.alerts_duplicated or run.lost or run.duplicated or run.broken_chains or run.wrong_pointers
    return not broken and not run.unalerted_moves and run.move_alerts <= run.moves
