"""Figure 1: DynamoDB requests per event, through each function's real `lambda_handler` on moto (and, beside
them, the push guard's requests to ECR: a multi-arch index push reads its manifest with one BatchGetImage)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import boto3

from benchmarks.harness import Deployment, Event, deployed, digest
from benchmarks.report import table
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.multiarch import build, build_pushes, put_build
from tests.support.requests import ApiCall, dynamodb_operations
from tests.support.stack import REGION

# The common push path (a push that is neither late nor a duplicate) reads once and writes once.
COMMON_PATH_BUDGET = 2


class ScenarioError(RuntimeError):
    """A case did not take the path it is named after, so its figure would be mislabelled."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one function."""

    function: str
    event: Event


def push(tag: str | None, label: str, time: str, event_id: str | None = None) -> Delivery:
    """An ECR push of digest `label` (tagged `tag`, or untagged)."""
    return Delivery("push_guard", ecr_image_action(tag=tag, digest=digest(label), time=time, event_id=event_id))


def scan(label: str, tags: list[str], time: str) -> Delivery:
    """A completed ECR basic scan of digest `label`, reporting `tags`."""
    return Delivery("scan_recorder", ecr_scan(digest=digest(label), tags=tags, time=time))


@dataclass(frozen=True, slots=True)
class Case:
    """Given some deliveries (not counted), when one more arrives, count its requests."""

    name: str
    given: tuple[Delivery, ...]
    when: Delivery
    outcome: str
    alert_path: bool = False
    common_push_path: bool = False
    # What ECR must hold before the deliveries (moto's ECR, which the push guard reads an index from).
    registry: Callable[[], None] | None = None
    # Requests to ECR the counted delivery must make (reported beside the ledger's, not in its budget).
    ecr_requests: int = 0


@dataclass(frozen=True, slots=True)
class Measured:
    """What one case's counted delivery did."""

    case: Case
    outcome: str
    alerts: int
    calls: list[ApiCall]

    @property
    def dynamodb(self) -> int:
        return sum(dynamodb_operations(self.calls).values())

    @property
    def bookkeeping(self) -> int:
        return sum(1 for call in self.calls if call.service == "dynamodb" and call.alert_bookkeeping)

    @property
    def budgeted(self) -> int:
        """Requests counted against the common-path budget: all but the alert bookkeeping."""
        return self.dynamodb - self.bookkeeping

    @property
    def publishes(self) -> int:
        return sum(1 for call in self.calls if call.service == "sns" and call.operation == "Publish")

    @property
    def ecr(self) -> int:
        return sum(1 for call in self.calls if call.service == "ecr")


def cases() -> list[Case]:
    """Each case on its own tag (and digests), so no case depends on another."""
    overwrite = push("dup", "dup-b", "2026-11-20T10:05:00Z", event_id="dup-overwrite")
    scanned = scan("rescanned-a", ["rescanned"], "2026-11-20T10:01:00Z")
    return [
        Case(
            "first push of a tag",
            given=(),
            when=push("first", "first-a", "2026-11-20T10:00:00Z"),
            outcome="recorded",
            common_push_path=True,
        ),
        Case(
            "same digest pushed again",
            given=(push("again", "again-a", "2026-11-20T10:00:00Z"),),
            when=push("again", "again-a", "2026-11-20T10:05:00Z"),
            outcome="recorded",
            common_push_path=True,
        ),
        Case(
            "overwrite (alert path)",
            given=(push("moved", "moved-a", "2026-11-20T10:00:00Z"),),
            when=push("moved", "moved-b", "2026-11-20T10:05:00Z"),
            outcome="recorded",
            alert_path=True,
            common_push_path=True,
        ),
        Case(
            "duplicate delivery",
            given=(push("dup", "dup-a", "2026-11-20T10:00:00Z"), overwrite),
            when=overwrite,
            outcome="duplicate",
        ),
        Case("untagged push", given=(), when=push(None, "untagged-a", "2026-11-20T10:00:00Z"), outcome="untagged"),
        Case(
            "late (out-of-order) push",
            given=(push("late", "late-a", "2026-11-20T10:00:00Z"), push("late", "late-c", "2026-11-20T10:10:00Z")),
            when=push("late", "late-b", "2026-11-20T10:05:00Z"),
            outcome="late",
        ),
        Case(
            "scan of a digest with one tag",
            given=(push("scanned", "scanned-a", "2026-11-20T10:00:00Z"),),
            when=scan("scanned-a", ["scanned"], "2026-11-20T10:01:00Z"),
            outcome="recorded",
        ),
        Case(
            "duplicate scan",
            given=(push("rescanned", "rescanned-a", "2026-11-20T10:00:00Z"), scanned),
            when=scanned,
            outcome="duplicate",
        ),
        index_push_case(),
    ]


MULTIARCH_REPOSITORY = "shop/multiarch"


def index_push_case() -> Case:
    """A multi-platform build (two platforms, two attestations) pushed as buildx does: the untagged platform and
    attestation manifests first (not counted), then the tagged index, whose children the push guard reads from
    ECR with one BatchGetImage and records in the same transaction as the pointer."""
    pushed = build("bench multiarch 1.0.0")
    *manifests, index = build_pushes(pushed, "1.0.0", "2026-11-20T10:00:00Z", repository=MULTIARCH_REPOSITORY)

    def store() -> None:
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=MULTIARCH_REPOSITORY)
        put_build(ecr, MULTIARCH_REPOSITORY, pushed, tag="1.0.0")

    return Case(
        "multi-arch index push (2 platforms + 2 attestations)",
        given=tuple(Delivery("push_guard", event) for event in manifests),
        when=Delivery("push_guard", index),
        outcome="recorded",
        common_push_path=True,
        registry=store,
        ecr_requests=1,
    )


def _measure(deployment: Deployment, case: Case) -> Measured:
    if case.registry is not None:
        case.registry()
    for delivery in case.given:
        deployment.invoke(delivery.function, delivery.event)
    with deployment.requests.record() as calls:
        result = deployment.invoke(case.when.function, case.when.event)
    measured = Measured(case, str(result["outcome"]), len(result["alerts"]), calls)
    if measured.outcome != case.outcome:
        raise ScenarioError(f"{case.name!r}: expected outcome {case.outcome!r}, got {measured.outcome!r}")
    if case.alert_path and not measured.alerts:
        raise ScenarioError(f"{case.name!r}: expected an alert, none was published")
    if not measured.dynamodb:
        raise ScenarioError(f"{case.name!r}: no DynamoDB request seen; is the request hook attached?")
    if measured.ecr != case.ecr_requests:
        raise ScenarioError(f"{case.name!r}: expected {case.ecr_requests} ECR request(s), saw {measured.ecr}")
    return measured


def measure() -> list[Measured]:
    """Run every case against one fresh deployment."""
    with deployed() as deployment:
        return [_measure(deployment, case) for case in cases()]


def render(results: list[Measured]) -> str:
    """Requests per case and by operation."""
    operations = sorted(set().union(*(dynamodb_operations(r.calls) for r in results)))
    headers = ["case", "outcome", "alerts", "DynamoDB", "bookkeeping", "budgeted", *operations, "SNS Publish", "ECR"]
    rows = []
    for r in results:
        by_operation: Counter[str] = dynamodb_operations(r.calls)
        budgeted: str | int = r.budgeted if r.case.common_push_path else "-"
        rows.append(
            [
                r.case.name,
                r.outcome,
                r.alerts,
                r.dynamodb,
                r.bookkeeping,
                budgeted,
                *(by_operation[op] for op in operations),
                r.publishes,
                r.ecr,
            ]
        )
    return table(headers, rows)


def over_budget(results: list[Measured]) -> list[Measured]:
    """Common-path cases whose requests (alert bookkeeping aside) exceed the budget."""
    return [r for r in results if r.case.common_push_path and r.budgeted > COMMON_PATH_BUDGET]
