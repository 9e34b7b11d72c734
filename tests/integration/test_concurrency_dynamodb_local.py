"""Concurrent, duplicated and reordered deliveries on DynamoDB Local (AWS's own engine).

Several processes, like several Lambda containers, deliver the same events at once and in shuffled order:
pushes racing pushes, and scans racing the pushes that move their tags.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType

from tests.support.containers import deliver_concurrently
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.stack import Stack

pytestmark = pytest.mark.dynamodb_local

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _history(stack: Stack, tag: str) -> list[dict[str, Any]]:
    pk = f"TAG#{REGISTRY}/shop/api:{tag}"
    return sorted(
        (item for item in stack.items() if item["pk"]["S"] == pk and item["sk"]["S"].startswith("MOVE#")),
        key=lambda item: item["sk"]["S"],
    )


def test_concurrent_duplicated_shuffled_pushes_land_exactly_once(local_stack: Stack) -> None:
    rng = random.Random(20261120)
    tags = ("latest", "1.4.0")
    pushes: dict[str, list[dict[str, Any]]] = {}
    for t, tag in enumerate(tags):
        # Several pushes share a second, so ties are broken by event id; a few repeat the previous content.
        times = sorted(START + timedelta(seconds=rng.randrange(0, 40)) for _ in range(30))
        digests = [_digest(1000 * t + rng.randrange(0, 20)) for _ in times]
        pushes[tag] = [
            ecr_image_action(tag=tag, digest=d, time=f"{moment:%Y-%m-%dT%H:%M:%SZ}")
            for d, moment in zip(digests, times, strict=True)
        ]
    deliveries = [event for events in pushes.values() for event in events for _ in range(2)]
    rng.shuffle(deliveries)

    outcomes = deliver_concurrently(local_stack, deliveries)

    counts = Counter(outcomes)
    assert not [o for o in outcomes if o.startswith("failed")], counts
    assert counts["duplicate"] == len(deliveries) // 2
    alerts = local_stack.received_alerts()
    assert len({a.alert.alert_id for a in alerts}) == len(alerts), "an alert was published twice"
    for tag, events in pushes.items():
        ordered = sorted(events, key=lambda e: (e["time"], e["id"]))
        history = _history(local_stack, tag)
        assert [item["event_id"]["S"] for item in history] == [e["id"] for e in ordered], "lost or doubled"
        chain = [item.get("previous_digest", {}).get("S") for item in history]
        assert chain == [None] + [item["digest"]["S"] for item in history[:-1]], "history is not one chain"
        pointer = next(
            i
            for i in local_stack.items()
            if i["pk"]["S"] == f"TAG#{REGISTRY}/shop/api:{tag}" and i["sk"]["S"] == "POINTER"
        )
        assert pointer["digest"]["S"] == ordered[-1]["detail"]["image-digest"]
        digests = [event["detail"]["image-digest"] for event in ordered]
        real_moves = sum(1 for a, b in itertools.pairwise(digests) if a != b)
        # Every move is covered by an alert; out of order, a move may be the very change of content into
        # the same push that an alert already reported, and an alert id is never published twice.
        uncovered = [
            entry["event_id"]["S"]
            for previous, entry in itertools.pairwise(history)
            if previous["digest"]["S"] != entry["digest"]["S"] and not entry["move_alerted"]["BOOL"]
        ]
        assert uncovered == []
        assert 0 < sum(1 for a in alerts if a.alert.tag == tag) <= real_moves


def test_scans_racing_the_pushes_that_move_their_tags_alert_each_move_once(local_stack: Stack) -> None:
    """Each round: tag r<i> names A_i; then A_i's scan and a push of r<i> to B_i race.

    Whichever wins, the move is reported as TAG_MOVED_AFTER_SCAN exactly once: by the push if the scan
    landed first, else by the scan (after the push's TAG_OVERWRITTEN).
    """
    rounds = 24
    setup = [ecr_image_action(tag=f"r{i}", digest=_digest(2 * i), time="2026-11-20T10:00:00Z") for i in range(rounds)]
    deliver_concurrently(local_stack, setup)
    race: list[dict[str, Any]] = []
    for i in range(rounds):
        race.append(ecr_scan(digest=_digest(2 * i), tags=[f"r{i}"], time="2026-11-20T10:01:00Z", event_id=f"scan-{i}"))
        race.append(ecr_image_action(tag=f"r{i}", digest=_digest(2 * i + 1), time="2026-11-20T10:00:30Z"))
    deliveries = race + race  # every event delivered twice
    random.Random(7).shuffle(deliveries)

    outcomes = deliver_concurrently(local_stack, deliveries)

    assert not [o for o in outcomes if o.startswith("failed")], Counter(outcomes)
    alerts = local_stack.received_alerts()
    for i in range(rounds):
        types = sorted(a.alert.type for a in alerts if a.alert.tag == f"r{i}")
        by_push = [AlertType.TAG_MOVED_AFTER_SCAN]
        by_scan = [AlertType.TAG_MOVED_AFTER_SCAN, AlertType.TAG_OVERWRITTEN]
        assert types in (by_push, by_scan), f"round {i}: {types}"
        moved = next(
            a.alert for a in alerts if a.alert.tag == f"r{i}" and a.alert.type is AlertType.TAG_MOVED_AFTER_SCAN
        )
        assert (moved.previous_digest, moved.current_digest, moved.scanned_digest) == (
            _digest(2 * i),
            _digest(2 * i + 1),
            _digest(2 * i),
        )
