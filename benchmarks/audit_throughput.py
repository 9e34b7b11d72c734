"""Figure 4: audit lines per second through the audit watcher's real handler on moto, against the floor.

The floor is what any consumer of the same deliveries must do: base64-decode, gunzip and `json.loads` the
delivery, then `json.loads` every line. The batch is mostly relevant lines (the subscription filter already
dropped the rest): pod and workload creations and kubelet status updates over a few hundred images, most of
them pushed and scanned beforehand, some not.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import Deployment, Event, deployed
from benchmarks.report import Cell, table
from tests.support.audit import ECR, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.requests import ApiCall, dynamodb_operations

LINES = 4000
LINES_PER_DELIVERY = 500
# A cluster runs a few dozen to a few hundred images; a delivery of one cluster's audit lines repeats them.
IMAGES = 120
UNSCANNED_SHARE = 0.05
SEED = 4
GOAL = 0.5


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass of the deliveries through the handler."""

    seconds: float
    seconds_in_moto: float
    requests: list[Counter[str]]
    alerts: int
    observations: int

    @property
    def own_seconds(self) -> float:
        """The handler's time outside the emulated AWS calls: Tagwarden's (and Powertools') own work."""
        return self.seconds - self.seconds_in_moto


@dataclass(frozen=True, slots=True)
class AuditRun:
    """How the batch went: twice through the handler (first sight, then steady state), and the floor."""

    lines: int
    deliveries: int
    distinct_images: list[int]
    first: Pass
    steady: Pass
    floor_seconds: float

    def rate(self, seconds: float) -> float:
        return self.lines / seconds


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _lines(rng: random.Random) -> tuple[list[list[dict[str, Any]]], list[int]]:
    templates = ("deployment_create.json", "pod_create_request_response.json", "cronjob_create.json")
    deliveries: list[list[dict[str, Any]]] = []
    distinct: list[int] = []
    for start in range(0, LINES, LINES_PER_DELIVERY):
        batch: list[dict[str, Any]] = []
        images: set[int] = set()
        for number in range(start, min(start + LINES_PER_DELIVERY, LINES)):
            image = rng.randrange(IMAGES)
            images.add(image)
            tag_ref = f"{ECR}/bench/svc-{image}:v1"
            if number % 3 == 0:
                pod = f"svc-{image}-7d9f8c6b5d-{number % 100_000:05d}"
                batch.append(kubelet_status(pod, tag_ref, f"{ECR}/bench/svc-{image}@{_digest(image)}", f"a-{number}"))
            else:
                line = with_images(audit_line(templates[number % len(templates)]), tag_ref)
                line["auditID"] = f"a-{number}"
                batch.append(line)
        deliveries.append(batch)
        distinct.append(len(images))
    return deliveries, distinct


def _prepare(deployment: Deployment, rng: random.Random) -> None:
    for image in range(IMAGES):
        deployment.invoke(
            "push_guard",
            ecr_image_action(
                tag="v1", digest=_digest(image), time="2026-11-20T09:00:00Z", repository=f"bench/svc-{image}"
            ),
        )
        if rng.random() >= UNSCANNED_SHARE:
            deployment.invoke(
                "scan_recorder",
                ecr_scan(
                    digest=_digest(image), tags=["v1"], time="2026-11-20T09:01:00Z", repository=f"bench/svc-{image}"
                ),
            )
        deployment.forget_moto_instances()  # fmt: skip


def _floor(encoded: list[Event]) -> float:
    started = time.perf_counter()
    for delivery in encoded:
        payload = json.loads(gzip.decompress(base64.b64decode(delivery["awslogs"]["data"])))
        for log_event in payload["logEvents"]:
            json.loads(log_event["message"])
    return time.perf_counter() - started


def _pass(deployment: Deployment, encoded: list[Event]) -> Pass:
    requests: list[Counter[str]] = []
    alerts = observations = 0
    seconds = in_moto = 0.0
    for delivery in encoded:
        with deployment.requests.record() as calls:
            started = time.perf_counter()
            result = deployment.invoke("audit_watcher", delivery)
            seconds += time.perf_counter() - started
            in_moto += deployment.requests.seconds_in_calls
        requests.append(dynamodb_operations(_only_dynamodb(calls)))
        alerts += len(result["alerts"])
        observations += int(result["observations"])
        deployment.forget_moto_instances()
    return Pass(seconds, in_moto, requests, alerts, observations)


def measure() -> AuditRun:
    """Prepare the ledger (untimed), then time the deliveries through the handler (twice) and the floor."""
    rng = random.Random(SEED)
    with deployed() as deployment:
        _prepare(deployment, rng)
        deliveries, distinct = _lines(rng)
        encoded = [envelope(batch) for batch in deliveries]
        first = _pass(deployment, encoded)
        steady = _pass(deployment, encoded)
        floor_seconds = min(_floor(encoded) for _ in range(3))
    return AuditRun(LINES, len(encoded), distinct, first, steady, floor_seconds)


def _only_dynamodb(calls: list[ApiCall]) -> list[ApiCall]:
    return [call for call in calls if call.service == "dynamodb"]


def render(run: AuditRun) -> str:
    """The rates, the ratios to the floor, and the ledger requests of each delivery."""
    per_delivery = 1000 / run.deliveries
    rows: list[list[Cell]] = [
        ["handler, first sight (usage and findings written)", run.rate(run.first.seconds),
         run.first.seconds * per_delivery, run.first.alerts],
        ["handler, steady state (the same lines again)", run.rate(run.steady.seconds),
         run.steady.seconds * per_delivery, run.steady.alerts],
        ["  of which Tagwarden's own work (outside moto)", run.rate(run.steady.own_seconds),
         run.steady.own_seconds * per_delivery, "-"],
        ["floor: base64 + gunzip + json.loads", run.rate(run.floor_seconds), run.floor_seconds * per_delivery, "-"],
    ]  # fmt: skip
    rates = table(["path", "lines/s", "ms per delivery", "alerts"], rows)
    end_to_end = run.floor_seconds / run.steady.seconds
    own = run.floor_seconds / run.steady.own_seconds
    verdict = "goal met" if own >= GOAL else "BELOW GOAL"
    requests: list[list[Cell]] = [
        [f"delivery {n + 1}", images, first["BatchGetItem"], sum(first.values()) - first["BatchGetItem"],
         steady["BatchGetItem"], sum(steady.values()) - steady["BatchGetItem"]]
        for n, (images, first, steady) in enumerate(
            zip(run.distinct_images, run.first.requests, run.steady.requests, strict=True))
    ]  # fmt: skip
    per_batch = table(
        ["delivery", "distinct images", "reads (first)", "writes (first)", "reads (steady)", "writes (steady)"],
        requests,
    )
    return (
        f"{rates}\n\n"
        f"rate / floor, steady state: {end_to_end:.2f} through moto; {own:.2f} for Tagwarden's own work "
        f"(goal: at least {GOAL}): {verdict}\n"
        f"{run.lines} lines in deliveries of {LINES_PER_DELIVERY}, {run.first.observations} image observations per "
        f"pass over {IMAGES} images; {UNSCANNED_SHARE:.0%} of them were never scanned.\n"
        "moto's response serializer costs about 1.5 ms per item read, so the moto figure measures moto.\n\n"
        f"{per_batch}\n"
        "reads: BatchGetItem, one per 100 distinct images of a delivery (a running digest is read through its\n"
        "tag's pointer), plus one for the findings. writes: usage, refreshed once per workload and image (then at\n"
        "most hourly), and each finding, recorded once (a finding seen again is not written again)."
    )
