"""The benign CI/CD day of multi-platform releases, shared by the scenario test (nothing above LOW) and the
benchmark figure that runs it over many delivery orders (`benchmarks/multiarch_day.py`).

What real ECR does (research 1.3, 2.4, 6, 7.3): a `docker buildx build --platform linux/amd64,linux/arm64
--push` emits one PUSH per manifest, in any order: the untagged platform manifests, the untagged attestation
manifests BuildKit adds, and the index under each of its tags. Scanners scan the platform manifests (and fail
on attestations); the kubelet reports the index digest as `imageID`; a workload may pin a platform manifest.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_scan
from tests.support.multiarch import Build, build, build_pushes, manifest_push, put_build

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

DAY = "2026-11-20"
Event = dict[str, Any]
# A function's handler, or anything that delivers an event to it (the benchmark's quiet invocation).
Deliver = Callable[[Event], Any]


def release(ecr: ECRClient, name: str, tags: list[str], time: str) -> tuple[Build, list[Event]]:
    """A CI build pushed under several tags: its manifests in ECR, and every event ECR emits for it."""
    pushed = build(name)
    for tag in tags:
        put_build(ecr, "shop/api", pushed, tag)
    events = build_pushes(pushed, tags[0], time)
    events += [manifest_push(digest=pushed.index_digest, time=time, tag=tag, index=True) for tag in tags[1:]]
    return pushed, events


def scans(pushed: Build, time: str, counts: dict[str, int]) -> list[Event]:
    """Basic scan-on-push: each platform manifest is scanned; each attestation manifest's scan FAILS."""
    events = [ecr_scan(digest=pushed.digest(p), tags=[], time=time, counts=counts) for p in pushed.platforms]
    events += [
        ecr_scan(digest=pushed.attestation_digest(p), tags=[], time=time, status="FAILED") for p in pushed.platforms
    ]
    return events


def deploy(tag: str, pod: str, image_id: str, audit_id: str, moment: str = "16:00:00") -> Event:
    """A Deployment of `shop/api:<tag>` at `moment` (lines are judged at their own time: by default after
    every release of the day's story), and the kubelet's report of what its pod runs a few seconds later."""
    image = f"{ECR}/shop/api:{tag}"
    spec = at(with_images(audit_line("deployment_create.json"), image), moment)
    return envelope([spec, at(kubelet_status(pod, image, image_id, audit_id), f"{moment[:6]}30")])


def deliver(events: list[tuple[str, Event]], push_guard: Deliver, scan_recorder: Deliver, seed: int) -> None:
    """EventBridge gives no order guarantee: the day's ECR events arrive shuffled within each hour."""
    rng = random.Random(seed)
    by_hour: dict[str, list[tuple[str, Event]]] = {}
    for kind, event in events:
        by_hour.setdefault(event["time"][:13], []).append((kind, event))
    for hour in sorted(by_hour):
        batch = by_hour[hour]
        rng.shuffle(batch)
        for kind, event in batch:
            (push_guard if kind == "push" else scan_recorder)(event)


@dataclass(frozen=True, slots=True)
class BenignDay:
    """The day's ECR events (pushes and scans, to deliver in any order) and the audit deliveries after them."""

    ecr_events: list[tuple[str, Event]]
    audit_deliveries: list[Event]


def benign_day(ecr: ECRClient) -> BenignDay:
    """Three multi-platform builds (1.5.0, 1.5.1, then the hotfix 1.5.2), `latest` following each release,
    their platform scans before or after the index pushes (attestation scans FAIL), and deployments whose
    kubelets report the index or a platform digest, and a workload pinned to a platform digest. `ecr` is
    moto's ECR holding an empty `shop/api`: the builds are stored in it."""
    builds = [
        release(ecr, "api 1.5.0", ["1.5.0", "latest"], f"{DAY}T08:00:01Z"),
        release(ecr, "api 1.5.1", ["1.5.1", "latest"], f"{DAY}T11:30:02Z"),
    ]
    events: list[tuple[str, Event]] = []
    for (pushed, pushes), when in zip(builds, [f"{DAY}T08:00:03Z", f"{DAY}T11:30:04Z"], strict=True):
        events += [("push", e) for e in pushes] + [("scan", e) for e in scans(pushed, when, {"MEDIUM": 4, "LOW": 9})]
    hotfix, hotfix_pushes = release(ecr, "api 1.5.2", ["1.5.2", "latest"], f"{DAY}T15:10:00Z")
    events += [("push", e) for e in hotfix_pushes]
    events += [("scan", e) for e in scans(hotfix, f"{DAY}T15:10:05Z", {"HIGH": 1, "MEDIUM": 2})]

    first, second = builds[0][0], builds[1][0]
    pinned = f"{ECR}/shop/api@{hotfix.digest('linux/arm64')}"
    deployments = [
        deploy("1.5.0", "api-5d8f7c9b6-amd64", f"{ECR}/shop/api@{first.index_digest}", "d-1"),
        deploy("1.5.1", "api-6c9e8d7a5-arm64", f"{ECR}/shop/api@{second.index_digest}", "d-2"),
        deploy("latest", "api-7b6a5c4d3-arm64", f"{ECR}/shop/api@{hotfix.index_digest}", "d-3"),
        # a node that reports the platform manifest it pulled, and a workload pinned to a platform digest
        deploy("1.5.2", "api-8a7b6c5d4-x86", f"{ECR}/shop/api@{hotfix.digest('linux/amd64')}", "d-4"),
        envelope([at(with_images(audit_line("deployment_create.json"), pinned), "16:01:00")]),
    ]
    return BenignDay(events, deployments)
