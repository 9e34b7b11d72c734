"""Figure 3: events per second through the real handlers on moto, for a mixed batch of pushes, then scans."""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.harness import Deployment, Event, deployed, digest
from benchmarks.report import table
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.requests import dynamodb_operations

PUSHES = 500
TAGS = 50
SCANS = 200
SEED = 20261120
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _at(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Batch:
    """Events for one function, and what kind of traffic they are."""

    function: str
    events: list[Event]
    mix: str


@dataclass(frozen=True, slots=True)
class Rate:
    """How one batch went."""

    batch: Batch
    seconds: list[float]
    dynamodb_requests: int
    outcomes: Counter[str]
    alerts: int
    ledger_items: tuple[int, int]  # before and after the batch

    @property
    def per_second(self) -> float:
        return len(self.seconds) / sum(self.seconds)


def push_batch(rng: random.Random) -> Batch:
    """Pushes over a set of tags: a tag's first push, then the same digest again or a new one, at random."""
    current: dict[str, str] = {}
    kinds: Counter[str] = Counter()
    events: list[Event] = []
    for number in range(PUSHES):
        tag = f"svc-{rng.randrange(TAGS):02d}"
        if tag not in current:
            kind = "new tags"
            current[tag] = digest(f"{tag}-{number}")
        elif rng.random() < 0.5:
            kind = "same-digest repeats"
        else:
            kind = "overwrites"
            current[tag] = digest(f"{tag}-{number}")
        kinds[kind] += 1
        events.append(ecr_image_action(tag=tag, digest=current[tag], time=_at(number)))
    mix = ", ".join(f"{kinds[kind]} {kind}" for kind in ("new tags", "same-digest repeats", "overwrites"))
    return Batch("push_guard", events, mix)


def scan_batch(rng: random.Random) -> tuple[list[Event], Batch]:
    """Scans over a set of tags, each pushed and then overwritten (the pushes are setup, not timed).

    Each scan reports the tag its digest was pushed with: half the digests are still the tag's current
    image, half were replaced, so the scans take both the plain path and the moved-during-scan alert path.
    """
    setup: list[Event] = []
    pushed: list[tuple[str, str]] = []
    for round_ in range(2):
        for number in range(TAGS):
            tag, image_digest = f"app-{number:02d}", digest(f"app-{number:02d}-{round_}")
            setup.append(ecr_image_action(tag=tag, digest=image_digest, time=_at(round_ * TAGS + number)))
            pushed.append((tag, image_digest))
    events = [
        ecr_scan(digest=image_digest, tags=[tag], time=_at(2 * TAGS + number))
        for number, (tag, image_digest) in enumerate(rng.choices(pushed, k=SCANS))
    ]
    mix = f"{len(pushed)} digests ({TAGS} tags pushed, then overwritten), picked at random"
    return setup, Batch("scan_recorder", events, mix)


def _run(deployment: Deployment, batch: Batch) -> Rate:
    seconds: list[float] = []
    outcomes: Counter[str] = Counter()
    alerts = 0
    items_before = len(deployment.stack.items())
    # What exists now (modules, botocore's models, moto's backends) lives as long as the container: keep it out
    # of the collector's full scans, as the batch churns through moto's table copies.
    gc.collect()
    gc.freeze()
    try:
        with deployment.requests.record() as calls:
            for event in batch.events:
                deployment.forget_moto_instances()
                start = time.perf_counter()
                result = deployment.invoke(batch.function, event)
                seconds.append(time.perf_counter() - start)
                outcomes[str(result["outcome"])] += 1
                alerts += len(result["alerts"])
    finally:
        gc.unfreeze()
    items = (items_before, len(deployment.stack.items()))
    return Rate(batch, seconds, sum(dynamodb_operations(calls).values()), outcomes, alerts, items)


def _warm_up(deployment: Deployment) -> None:
    """The first invocations create the AWS clients: a cold start's cost, measured separately."""
    warm_up = digest("warm-up")
    deployment.invoke("push_guard", ecr_image_action(tag="warm-up", digest=warm_up, time=_at(0)))
    deployment.invoke("scan_recorder", ecr_scan(digest=warm_up, tags=["warm-up"], time=_at(1)))


def measure() -> list[Rate]:
    """Pushes, then scans, each on a fresh deployment with warm handlers.

    Separate deployments keep the scans off the push batch's large ledger: moto's cost per event grows
    with the table (see `NOTE`), and a smaller table keeps the whole run short.
    """
    rng = random.Random(SEED)
    pushes = push_batch(rng)
    scan_setup, scans = scan_batch(rng)
    with deployed() as deployment:
        _warm_up(deployment)
        push_rate = _run(deployment, pushes)
    with deployed() as deployment:
        _warm_up(deployment)
        for event in scan_setup:
            deployment.invoke("push_guard", event)
        scan_rate = _run(deployment, scans)
    return [push_rate, scan_rate]


def render(rates: list[Rate]) -> str:
    """Events per second and per-event latency, with what the batch contained."""
    headers = [
        "handler",
        "events",
        "events/s",
        "mean ms",
        "p95 ms",
        "first 10% ms",
        "last 10% ms",
        "ledger items",
        "DynamoDB req/event",
        "alerts",
    ]
    rows: list[list[str | int | float]] = []
    for rate in rates:
        ms = [s * 1000 for s in rate.seconds]
        tenth = max(1, len(ms) // 10)
        rows.append(
            [
                rate.batch.function,
                len(ms),
                rate.per_second,
                statistics.fmean(ms),
                statistics.quantiles(ms, n=20)[18],
                statistics.fmean(ms[:tenth]),
                statistics.fmean(ms[-tenth:]),
                "{} -> {}".format(*rate.ledger_items),
                f"{rate.dynamodb_requests / len(ms):.2f}",
                rate.alerts,
            ]
        )
    traffic = "\n".join(
        f"  {rate.batch.function}: {rate.batch.mix}; outcomes: "
        + ", ".join(f"{count} {outcome}" for outcome, count in sorted(rate.outcomes.items()))
        for rate in rates
    )
    return f"{table(headers, rows)}\n\nTraffic:\n{traffic}\n\n{NOTE}"


NOTE = """\
Note: moto emulates DynamoDB, SNS and SQS inside this Python process, so these rates measure mostly
moto's speed, not DynamoDB's. moto deep-copies the whole table for each item of a TransactWriteItems
(its rollback copy), so time per event grows with the ledger's size (first vs last 10%), which a real
table does not do. Between events, untimed, the harness drops moto's tracking of those copies (kept
alive until the mock ends otherwise: 1.6 GB after 500 pushes), and the startup heap is frozen
(gc.freeze) so collections scan only what the batch creates. Compare these figures between versions
of Tagwarden; do not size production with them."""
