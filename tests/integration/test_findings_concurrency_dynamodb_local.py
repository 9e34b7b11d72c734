"""A burst of Inspector findings on one image, from several containers at once, on DynamoDB Local.

Inspector reports every finding of an image's scan as its own event, around its scan summary: they all
contend for the one digest record, delivered twice and in any order.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from tests.support.containers import deliver_concurrently
from tests.support.events import ecr_image_action
from tests.support.inspector import inspector_finding, inspector_scan
from tests.support.stack import Stack

pytestmark = pytest.mark.dynamodb_local

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"


def test_a_burst_of_findings_lands_each_finding_once_and_judges_the_image_from_all(local_stack: Stack) -> None:
    deliver_concurrently(local_stack, [ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:14:07Z")])
    severities = ["CRITICAL"] * 2 + ["HIGH"] * 5 + ["LOW"] * 3
    burst: list[dict[str, Any]] = [
        inspector_finding(digest=A, time="2026-11-20T09:16:31Z", severity=severity, finding=f"{n:032x}")
        for n, severity in enumerate(severities)
    ]
    counts = {"CRITICAL": 2, "HIGH": 5, "MEDIUM": 0, "TOTAL": 10}
    burst.append(inspector_scan(digest=A, tags=["latest"], time="2026-11-20T09:16:38Z", counts=counts))
    # One CRITICAL finding is suppressed an hour later; its event may arrive before the finding's first one.
    burst.append(
        inspector_finding(
            digest=A, time="2026-11-20T10:16:31Z", severity="CRITICAL", status="SUPPRESSED", finding=f"{0:032x}"
        )
    )
    deliveries = burst + burst
    random.Random(1120).shuffle(deliveries)

    outcomes = deliver_concurrently(local_stack, deliveries)

    assert not [o for o in outcomes if o.startswith("failed")], Counter(outcomes)
    items = local_stack.items()
    findings = [i for i in items if i["sk"]["S"].startswith("VULN#")]
    assert len(findings) == len(severities)
    (record,) = (i for i in items if i["sk"]["S"] == "IMAGE")
    scan = record["scan"]["M"]
    final = {name: int(value["N"]) for name, value in scan["finding_counts"]["M"].items()}
    assert (scan["verdict"]["S"], final) == ("fail", {"CRITICAL": 1, "HIGH": 5, "LOW": 3})
    (pointer,) = (i for i in items if i["sk"]["S"] == "POINTER")
    assert pointer["scan"]["M"]["event_key"] == scan["event_key"]
