"""Inspector findings on two platform manifests of one image index at once, on DynamoDB Local.

Each finding re-derives the index from its own platform's new state and the other platform's state as read:
two at once must not both win on what each read of the other (the index's derivation counter), or the index
would keep a verdict that ignores one of them.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import boto3
import pytest

from tests.support.audit import ECR
from tests.support.containers import deliver_concurrently
from tests.support.inspector import inspector_finding, inspector_scan
from tests.support.multiarch import Build, build, build_pushes, put_build
from tests.support.stack import REGION, Stack

pytestmark = pytest.mark.dynamodb_local

ROUNDS = 6
CLEAN = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 0, "TOTAL": 1}


def _finding(pushed: Build, platform: str, time: str, status: str) -> dict[str, Any]:
    cve = f"{platform.replace('/', '')}{'0' * 32}"[:32]
    return inspector_finding(
        digest=pushed.digest(platform), time=time, severity="CRITICAL", status=status, finding=cve, tags=[]
    )


def _index_verdicts(stack: Stack, builds: list[Build]) -> dict[str, str]:
    records = {i["pk"]["S"]: i for i in stack.items() if i["sk"]["S"] == "IMAGE"}
    return {
        pushed.index_digest: records[f"IMAGE#{ECR}/shop/api@{pushed.index_digest}"]["scan"]["M"]["verdict"]["S"]
        for pushed in builds
    }


def _pointer_verdicts(stack: Stack) -> dict[str, str]:
    return {i["pk"]["S"]: i["scan"]["M"]["verdict"]["S"] for i in stack.items() if i["sk"]["S"] == "POINTER"}


def test_findings_on_both_platforms_at_once_both_count_for_the_index(local_stack: Stack) -> None:
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="shop/api")
    builds = [build(f"api 4.{n}.0") for n in range(ROUNDS)]
    setup: list[dict[str, Any]] = []
    for n, pushed in enumerate(builds):
        put_build(ecr, "shop/api", pushed, f"4.{n}.0")
        setup += build_pushes(pushed, f"4.{n}.0", "2026-11-20T09:00:00Z")
        setup += [
            inspector_scan(digest=pushed.digest(p), tags=[], time="2026-11-20T09:01:00Z", counts=CLEAN)
            for p in pushed.platforms
        ]
    assert not [o for o in deliver_concurrently(local_stack, setup, containers=1) if o.startswith("failed")]
    assert set(_index_verdicts(local_stack, builds).values()) == {"pass"}

    # When Inspector reports a CRITICAL on both platforms of every index at once (each event delivered twice)
    found = [_finding(b, p, "2026-11-25T06:00:00Z", "ACTIVE") for b in builds for p in b.platforms]
    deliveries = found + found
    random.Random(1125).shuffle(deliveries)
    outcomes = deliver_concurrently(local_stack, deliveries)
    assert not [o for o in outcomes if o.startswith("failed")], Counter(outcomes)
    assert Counter(outcomes) == {"recorded": len(found), "duplicate": len(found)}
    assert set(_index_verdicts(local_stack, builds).values()) == {"fail"}

    # When both are suppressed at once, then every index passes again: had one suppression derived the index
    # from the other platform's state as read before the other's write, the index would keep failing
    suppressed = [_finding(b, p, "2026-11-26T06:00:00Z", "SUPPRESSED") for b in builds for p in b.platforms]
    deliveries = suppressed + suppressed
    random.Random(1126).shuffle(deliveries)
    outcomes = deliver_concurrently(local_stack, deliveries)
    assert not [o for o in outcomes if o.startswith("failed")], Counter(outcomes)
    assert set(_index_verdicts(local_stack, builds).values()) == {"pass"}
    assert set(_pointer_verdicts(local_stack).values()) == {"pass"}
