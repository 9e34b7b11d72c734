"""Opt-in revert under duplicated and out-of-order events: how many alerts, reverts and PutImage calls.

Every attack goes through the real push guard and tag reverter handlers on moto (DynamoDB, SNS, SQS, ECR),
each release scanned (passing) first, with the deliveries EventBridge and SQS may make: the attacker's push
delivered twice before the reverter runs (so the request is handed over twice), the revert's own push event
arriving while the reverter is still between its PutImage and recording the outcome (every other attack) or
after it, that event delivered twice, and the attacker's push delivered once more after the revert. Attacks
are shuffled.
Run alone with `python -m benchmarks.revert_duplicates`, or as figure 8 of `make bench`.
"""

from __future__ import annotations

import os

# Before Powertools is imported (it reads these once), when run alone: quiet logs, no tracing.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
os.environ.setdefault("LOG_LEVEL", "CRITICAL")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

import contextlib
import io
import random
import time
from dataclasses import dataclass
from typing import Any

from moto import mock_aws
from tagwarden.domain.alerts import RevertStatus

from tests.conftest import cold_start
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import FakeLambdaContext
from tests.support.revert import ACCOUNT, Registry, ecr_client, manifest, start_reverter
from tests.support.stack import create_stack

ATTACKS = 20
SEED = 12


@dataclass(frozen=True)
class RevertRun:
    """What the story produced."""

    attacks: int
    push_guard_deliveries: int
    reverter_messages: int
    alerts: int
    reverted_alerts: int
    put_images: int
    revert_entries: int
    alerts_from_revert_pushes: int
    tags_back: int
    left_in_queues: int
    seconds: float

    @property
    def sound(self) -> bool:
        """One alert, one revert and one PutImage per attack; nothing alerted for the reverts, nothing left."""
        per_attack = (self.alerts, self.reverted_alerts, self.put_images, self.revert_entries, self.tags_back)
        return all(n == self.attacks for n in per_attack) and not (self.alerts_from_revert_pushes + self.left_in_queues)


def measure(attacks: int = ATTACKS, seed: int = SEED) -> RevertRun:
    """Play the story for `attacks` protected tags; count what came out."""
    rng = random.Random(seed)
    started = time.perf_counter()
    with mock_aws(), contextlib.redirect_stdout(io.StringIO()):
        stack = create_stack()
        context = FakeLambdaContext()
        ecr = ecr_client()
        ecr.create_repository(repositoryName="shop/api")
        registry = Registry(ecr)
        reverter, environment = start_reverter(stack, context)
        push_guard = cold_start("push_guard", environment, context)
        # Each release passes its scan on push: only content with a passing scan is put back.
        scan_recorder = cold_start("scan_recorder", stack.environment(), context)
        deliveries, revert_push_alerts = 0, 0

        def deliver(event: dict[str, Any]) -> dict[str, Any]:
            nonlocal deliveries, revert_push_alerts
            deliveries += 1
            result: dict[str, Any] = push_guard(event)
            if event["detail"]["image-digest"] == registry_release.get(event["detail"]["image-tag"]):
                revert_push_alerts += len(result["alerts"])
            return result

        registry_release: dict[str, str] = {}
        tags = [f"1.{n}.0" for n in range(attacks)]
        for tag in tags:
            release = manifest(f"release {tag}")
            registry.push("shop/api", f"keep-{tag}", release, "2026-11-20T09:00:00Z")
            deliver(registry.push("shop/api", tag, release, "2026-11-20T09:00:01Z"))
            registry_release[tag] = registry.tag_digest("shop/api", tag) or ""
            scanned = ecr_scan(digest=registry_release[tag], tags=[tag], time="2026-11-20T09:01:30Z")
            scanned["account"] = ACCOUNT
            scan_recorder(scanned)
        rng.shuffle(tags)
        revert_events: dict[str, dict[str, Any]] = {}
        client = reverter.module.TAG_REVERTER._registry._client

        current: list[str] = []

        def revert_pushed(**_: Any) -> None:
            # ECR's event for the reverter's PutImage; every other one arrives before the outcome is recorded.
            tag = current[-1]
            event = ecr_image_action(
                tag=tag, digest=registry_release[tag], time="2026-11-20T09:40:30Z", account=ACCOUNT
            )
            revert_events[tag] = event
            if tags.index(tag) % 2 == 0:
                deliver(event)

        client.meta.events.register("after-call.ecr.PutImage", revert_pushed)
        for tag in tags:
            current.append(tag)
            attack = registry.push("shop/api", tag, manifest(f"attacker {tag}"), "2026-11-20T09:40:12Z")
            deliver(attack)
            deliver(attack)  # delivered twice before the reverter runs: the request is handed over twice
            reverter.run()
            if tags.index(tag) % 2 == 1:
                deliver(revert_events[tag])
            deliver(revert_events[tag])  # the revert's push delivered again
            deliver(attack)  # the original push redelivered after the revert
            reverter.run()
        alerts = stack.received_alerts()
        revert_entries = sum(
            1 for item in stack.items() if item["sk"]["S"].startswith("MOVE#") and item.get("reverts", {}).get("BOOL")
        )
        return RevertRun(
            attacks=attacks,
            push_guard_deliveries=deliveries,
            reverter_messages=reverter.delivered,
            alerts=len(alerts),
            reverted_alerts=sum(
                1 for a in alerts if a.alert.revert is not None and a.alert.revert.status is RevertStatus.REVERTED
            ),
            put_images=reverter.put_images,
            revert_entries=revert_entries,
            alerts_from_revert_pushes=revert_push_alerts,
            tags_back=sum(1 for tag in tags if registry.tag_digest("shop/api", tag) == registry_release[tag]),
            left_in_queues=reverter.pending() + _depth(reverter.sqs, reverter.dead_letter_url),
            seconds=time.perf_counter() - started,
        )


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def render(run: RevertRun) -> str:
    """The figures, one per line."""
    rows = [
        ("protected-tag overwrites (attacks)", run.attacks),
        ("push guard deliveries (each attack 3x, each revert push 2x, releases)", run.push_guard_deliveries),
        ("revert requests delivered to the reverter (handed over twice per attack)", run.reverter_messages),
        ("alerts published", run.alerts),
        ("  of which say REVERTED", run.reverted_alerts),
        ("ECR PutImage calls", run.put_images),
        ("history entries recorded as the revert", run.revert_entries),
        ("alerts raised by the reverts' own pushes", run.alerts_from_revert_pushes),
        ("tags naming their release again", run.tags_back),
        ("messages left in the request and dead-letter queues", run.left_in_queues),
    ]
    lines = [f"{label:<76} {value:>5}" for label, value in rows]
    lines.append(
        f"{'verdict: one alert, one revert, one PutImage per attack, no loop':<76} {'yes' if run.sound else 'NO'}"
    )
    lines.append(f"({run.seconds:.1f} s on moto)")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    figures = measure()
    print(render(figures))
    sys.exit(0 if figures.sound else 1)
