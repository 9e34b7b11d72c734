"""The attack with the registry's guard switched off, told through CloudTrail: who weakened the repository, and
who moved the protected tag, named in the alerts, whichever of CloudTrail's and ECR's events arrives first."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import Handler
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
ATTACKER = {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEATTACKER1",
    "arn": "arn:aws:iam::111122223333:user/build-bot",
    "accountId": "111122223333",
    "accessKeyId": "AKIAEXAMPLELEAKED001",
    "userName": "build-bot",
}


def as_attacker(sample: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event(sample))
    detail = event["detail"]
    detail["userIdentity"] = ATTACKER
    detail["sourceIPAddress"] = "192.0.2.66"
    detail.update(changes)
    return event


def attacker_push(tag: str, digest: str) -> dict[str, Any]:
    event = as_attacker("trail_watcher/put_image.json", eventID="5e1d7c2b-0f3a-4b9e-8c6d-1a2b3c4d5e6f")
    event["detail"]["requestParameters"]["imageTag"] = tag
    image_id = event["detail"]["responseElements"]["image"]["imageId"]
    image_id.update(imageTag=tag, imageDigest=digest)
    return event


@pytest.mark.parametrize("cloudtrail_first", [True, False], ids=["cloudtrail-first", "ecr-first"])
def test_a_leaked_key_turns_immutability_off_and_moves_a_release_tag(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, trail_watcher: Handler, cloudtrail_first: bool
) -> None:
    # Given shop/api immutable except `latest`, and release 1.4.0 pushed and scanned clean
    trail_watcher(load_event("trail_watcher/put_image_tag_mutability_immutable.json"))  # 08:30
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T09:01:00Z", counts={"LOW": 1}))
    assert stack.received_alerts() == []

    # When a leaked key switches the repository to MUTABLE, then pushes other content as 1.4.0
    trail_watcher(as_attacker("trail_watcher/put_image_tag_mutability_mutable.json"))  # 09:57
    push = ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:02:03Z")
    cloudtrail = attacker_push("1.4.0", B)  # PutImage at 10:02:02
    deliveries = [(cloudtrail, trail_watcher), (push, push_guard)]
    for event, handler in deliveries if cloudtrail_first else reversed(deliveries):
        handler(event)
        handler(event)  # every event delivered twice

    # Then the weakening is alerted HIGH, naming the key's user and where it came from
    weakened, moved = [r.alert for r in stack.received_alerts()]
    assert (weakened.type, weakened.severity) == (AlertType.TAG_PROTECTION_WEAKENED, Severity.HIGH)
    assert "it was IMMUTABLE_WITH_EXCLUSION (latest)" in weakened.summary
    assert weakened.actor is not None and (weakened.actor.principal, weakened.actor.source_ip) == (
        "build-bot",
        "192.0.2.66",
    )
    # And the move of the scanned release is CRITICAL, naming the pusher when CloudTrail came first
    assert (moved.type, moved.severity, moved.tag) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL, "1.4.0")
    if cloudtrail_first:
        assert moved.actor is not None and moved.actor.arn == ATTACKER["arn"]
    else:
        assert moved.actor is None  # published at once: "not yet known"
    # And either way the history names who pushed
    entries = [
        i for i in stack.items() if i["pk"]["S"].endswith("/shop/api:1.4.0") and i["sk"]["S"].startswith("MOVE#")
    ]
    named = sorted((i["sk"]["S"], "build-bot" in i.get("actor", {}).get("S", "")) for i in entries)
    assert [was_attacker for _, was_attacker in named] == [False, True]
