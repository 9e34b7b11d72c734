"""Opt-in revert end to end: the real push guard and tag reverter handlers on moto's DynamoDB, SNS, SQS
and ECR, with ECR Image Action events for every push (the attacker's and the revert's own).

moto drops an image when its only tag moves (real ECR keeps it untagged), so each release is also tagged
`keep-<release>`, which keeps the previous image in the repository as real ECR would. Each release is
scanned (an ECR scan event through the real scan recorder): only content with a passing scan is put back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType, RevertStatus

from tests.conftest import cold_start
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.revert import ACCOUNT, Registry, Reverter, digest_of, ecr_client, manifest, start_reverter
from tests.support.stack import ReceivedAlert, Stack

REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
RELEASE, ATTACK, AGAIN = manifest("release 1.4.0"), manifest("attacker"), manifest("attacker again")
A, B, C = digest_of(RELEASE), digest_of(ATTACK), digest_of(AGAIN)


@dataclass
class World:
    """The stack, ECR, the push guard with revert on, and the reverter."""

    stack: Stack
    registry: Registry
    push_guard: Handler
    reverter: Reverter
    scan_recorder: Handler

    def released(self, repository: str = "shop/api", tag: str = "1.4.0", *, scanned: bool = True) -> None:
        """CI pushes the release (also as keep-<tag>, see the module docstring); scan on push passes it."""
        self.registry.push(repository, f"keep-{tag}", RELEASE, "2026-11-20T09:00:00Z")
        assert self.push_guard(self.registry.push(repository, tag, RELEASE, "2026-11-20T09:00:01Z"))["alerts"] == []
        if scanned:
            self.scanned(repository, tag, A, "2026-11-20T09:01:30Z")

    def scanned(self, repository: str, tag: str, digest: str, time: str, counts: dict[str, int] | None = None) -> None:
        """ECR's scan finishes for `digest`, by default with a MEDIUM finding (passing at the CRITICAL default)."""
        from tests.support.events import ecr_scan

        event = ecr_scan(digest=digest, tags=[tag], time=time, repository=repository, counts=counts)
        event["account"] = ACCOUNT  # the registry the pushes went to (moto's account)
        assert self.scan_recorder(event)["outcome"] == "recorded"

    def attacked(self, repository: str = "shop/api", tag: str = "1.4.0") -> tuple[dict[str, Any], dict[str, Any]]:
        """The attacker pushes other content under the tag: the event, and what the push guard returned."""
        event = self.registry.push(repository, tag, ATTACK, "2026-11-20T09:40:12Z", event_id="attack")
        return event, self.push_guard(event)

    def alerts(self) -> list[ReceivedAlert]:
        return self.stack.received_alerts()

    def history(self, tag: str = "1.4.0", repository: str = "shop/api") -> list[tuple[str, str, bool]]:
        pk = f"TAG#{REGISTRY}/{repository}:{tag}"
        moves = sorted(
            (item["sk"]["S"], item)
            for item in self.stack.items()
            if item["pk"]["S"] == pk and item["sk"]["S"] != "POINTER"
        )
        return [(i["action"]["S"], i["digest"]["S"], i.get("reverts", {}).get("BOOL", False)) for _, i in moves]


def revert_push(time: str = "2026-11-20T09:40:14Z", event_id: str = "revert-push") -> dict[str, Any]:
    """The ECR Image Action ECR emits for the reverter's PutImage: the tag pushed back to the release."""
    from tests.support.events import ecr_image_action

    return ecr_image_action(tag="1.4.0", digest=A, time=time, event_id=event_id, account=ACCOUNT)


def make_world(
    stack: Stack,
    context: FakeLambdaContext,
    *,
    max_attempts: int = 5,
    revert: bool = True,
    prefixes: str = "shop/",
    reverter_account: str = ACCOUNT,
) -> World:
    ecr = ecr_client()
    for repository in ("shop/api", "other/api", "shopping"):
        ecr.create_repository(repositoryName=repository)
    reverter, environment = start_reverter(
        stack, context, prefixes=prefixes, max_attempts=max_attempts, reverter_account=reverter_account
    )
    push_guard = cold_start("push_guard", environment if revert else stack.environment(), context)
    scan_recorder = cold_start("scan_recorder", stack.environment(), context)
    return World(stack, Registry(ecr), push_guard, reverter, scan_recorder)


@pytest.fixture
def world(stack: Stack, lambda_context: FakeLambdaContext) -> World:
    return make_world(stack, lambda_context)


def test_an_overwritten_protected_tag_is_put_back_and_the_alert_says_so(world: World) -> None:
    world.released()

    _, result = world.attacked()

    # The alert waits for the revert's outcome: nothing is published by the push guard.
    assert result == {"outcome": "recorded", "alerts": [], "revert": "requested"}
    assert world.alerts() == []
    assert world.reverter.run() == 1
    assert world.registry.tag_digest("shop/api", "1.4.0") == A
    (received,) = world.alerts()
    alert = received.alert
    # The release was scanned: its overwrite is the CRITICAL move after a scan.
    assert (alert.type, alert.previous_digest, alert.current_digest) == (AlertType.TAG_MOVED_AFTER_SCAN, A, B)
    assert alert.revert is not None and alert.revert.status is RevertStatus.REVERTED
    assert "put the tag back" in alert.revert.detail and "Reverted:" in alert.summary
    assert received.raw["revert"] == {"status": "REVERTED", "detail": alert.revert.detail}
    assert world.reverter.put_images == 1

    # ECR reports the revert's own push: recorded as the revert, not alerted as an overwrite.
    assert world.push_guard(revert_push()) == {"outcome": "recorded", "alerts": []}
    assert world.alerts() == []
    assert world.history() == [("PUSH", A, False), ("PUSH", B, False), ("PUSH", A, True)]
    assert world.reverter.pending() == 0


def test_previous_image_deleted_is_not_reverted_and_the_alert_says_why(world: World) -> None:
    world.released()
    world.attacked()
    world.registry.ecr.batch_delete_image(repositoryName="shop/api", imageIds=[{"imageDigest": A}])

    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None
    assert received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "no longer in the repository" in received.alert.revert.detail
    assert world.registry.tag_digest("shop/api", "1.4.0") == B
    assert world.reverter.put_images == 0


def test_an_immutable_repository_is_not_reverted(world: World) -> None:
    world.released()
    world.attacked()
    world.registry.ecr.put_image_tag_mutability(repositoryName="shop/api", imageTagMutability="IMMUTABLE")

    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None
    assert received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "immutable" in received.alert.revert.detail
    assert world.reverter.put_images == 0


def test_a_tag_moved_again_is_not_reverted_by_the_first_request(world: World) -> None:
    world.released()
    world.attacked()
    # The attacker pushes again before the reverter ran: that overwrite asks to restore the release too.
    again = world.registry.push("shop/api", "1.4.0", AGAIN, "2026-11-20T09:41:00Z", event_id="again")
    assert world.push_guard(again)["revert"] == "requested"

    assert world.reverter.run() == 2

    by_current = {r.alert.current_digest: r.alert for r in world.alerts()}
    first, second = by_current[B], by_current[C]
    assert first.revert is not None and first.revert.status is RevertStatus.NOT_REVERTED
    assert "moved again" in first.revert.detail
    # The second request restores the release, not the first attacker's image.
    assert second.revert is not None and second.revert.status is RevertStatus.REVERTED
    assert world.registry.tag_digest("shop/api", "1.4.0") == A
    assert world.reverter.put_images == 1


@pytest.mark.parametrize(
    ("repository", "tag", "revert"),
    [("other/api", "1.4.0", True), ("shop/api", "latest", True), ("shop/api", "1.4.0", False)],
    ids=["repository outside the prefixes", "unprotected tag", "revert off"],
)
def test_no_revert_outside_its_scope(
    stack: Stack, lambda_context: FakeLambdaContext, repository: str, tag: str, revert: bool
) -> None:
    world = make_world(stack, lambda_context, revert=revert)
    world.released(repository, tag)

    _, result = world.attacked(repository, tag)

    # Published at once, as without revert; nothing asked of the reverter, ECR untouched.
    (received,) = world.alerts()
    assert result["alerts"] == [received.alert.alert_id] and "revert" not in result
    assert received.alert.revert is None
    assert world.reverter.pending() == 0
    assert world.registry.tag_digest(repository, tag) == B


def test_duplicates_and_out_of_order_events_make_one_alert_and_one_revert(world: World) -> None:
    world.released()
    attack, _ = world.attacked()
    # The original push delivered again before the reverter ran: the request is handed over again.
    assert world.push_guard(attack) == {"outcome": "duplicate", "alerts": [], "revert": "requested"}

    # The revert's own push event reaches the push guard before the reverter records its outcome.
    pushed_back: list[dict[str, Any]] = []

    def revert_event_arrives(**_: Any) -> None:
        if not pushed_back:
            pushed_back.append(world.push_guard(revert_push()))

    client = world.reverter.module.TAG_REVERTER._registry._client
    client.meta.events.register("after-call.ecr.PutImage", revert_event_arrives)
    assert world.reverter.run() == 2
    assert pushed_back == [{"outcome": "recorded", "alerts": []}]

    # The revert push event delivered again, the original push delivered again after the revert.
    assert world.push_guard(revert_push())["outcome"] == "duplicate"
    assert world.push_guard(attack) == {"outcome": "duplicate", "alerts": []}
    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.REVERTED
    assert world.reverter.put_images == 1
    assert world.history() == [("PUSH", A, False), ("PUSH", B, False), ("PUSH", A, True)]
    assert world.registry.tag_digest("shop/api", "1.4.0") == A
    assert world.reverter.pending() == 0


def test_a_late_revert_push_is_recorded_as_the_revert(world: World) -> None:
    world.released()
    world.attacked()
    world.reverter.run()
    # A later push reaches the push guard first; the revert's push, older, arrives after it.
    later = world.registry.push("shop/api", "1.4.0", AGAIN, "2026-11-20T09:45:00Z", event_id="later")
    world.push_guard(later)

    assert world.push_guard(revert_push())["outcome"] == "late"
    world.reverter.run()  # the later push is an overwrite too, reverted to the release

    # The attack's alert and the later push's own (B -> C, as the ledger saw it then); none for the revert.
    alerts = {(a.alert.previous_digest, a.alert.current_digest): a.alert for a in world.alerts()}
    assert set(alerts) == {(A, B), (B, C)}
    assert all(a.revert is not None and a.revert.status is RevertStatus.REVERTED for a in alerts.values())
    assert world.history() == [("PUSH", A, False), ("PUSH", B, False), ("PUSH", A, True), ("PUSH", C, False)]
    assert world.registry.tag_digest("shop/api", "1.4.0") == A


def test_a_revert_that_keeps_failing_still_publishes_the_alert_on_its_last_attempt(
    stack: Stack, lambda_context: FakeLambdaContext
) -> None:
    world = make_world(stack, lambda_context, max_attempts=2)
    world.released()
    world.attacked()
    client = world.reverter.module.TAG_REVERTER._registry._client

    def unavailable(**_: Any) -> None:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="https://api.ecr.eu-west-1.amazonaws.com")

    client.meta.events.register("before-send.ecr.DescribeRepositories", unavailable)

    world.reverter.run()  # first attempt: reported as a batch item failure, delivered again
    assert world.alerts() == []
    assert world.reverter.results[-1]["batchItemFailures"]
    world.reverter.run()  # the last attempt settles it NOT_REVERTED and publishes

    (received,) = world.alerts()
    assert received.alert.revert is not None
    assert received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "failed after 2 attempts" in received.alert.revert.detail
    assert world.reverter.pending() == 0


def test_a_malformed_request_fails_alone_and_the_others_are_settled(world: World) -> None:
    world.released()
    world.attacked()
    world.stack.sqs.send_message(QueueUrl=world.reverter.queue_url, MessageBody='{"tag": "#oops"}')

    world.reverter.run()

    (failure,) = world.reverter.results[-1]["batchItemFailures"]
    assert failure["itemIdentifier"]
    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.REVERTED


def test_tagwarden_history_shows_the_request_and_the_revert(world: World) -> None:
    from tests.integration.test_cli import tagwarden

    world.released()
    world.attacked()
    world.reverter.run()
    world.push_guard(revert_push())

    table = tagwarden("history", f"{REGISTRY}/shop/api:1.4.0", "--table", world.stack.table_name)
    as_json = tagwarden("--json", "history", f"{REGISTRY}/shop/api:1.4.0", "--table", world.stack.table_name)

    assert table.exit_code == 0, table.output
    assert "revert requested" in table.stdout
    assert [e["revert"] for e in json.loads(as_json.stdout)] == [None, "revert requested", "revert"]
    assert [e["digest"] for e in json.loads(as_json.stdout)] == [A, B, A]


def test_the_sample_event_naming_no_recorded_request_writes_nothing(world: World) -> None:
    from tests.support.events import load_event

    before = world.stack.items()
    event = load_event("tag_reverter/revert_request.json")

    result = world.reverter.module.lambda_handler(event, world.reverter.context)

    # A message the ledger never asked for (forged, or mangled) cannot make the reverter write anything.
    assert result == {"batchItemFailures": []}
    assert world.stack.items() == before and world.alerts() == [] and world.reverter.put_images == 0


HOSTILE_BODIES = [
    "not json",
    "[]",
    '{"registry": "x"}',
    json.dumps({"registry": REGISTRY, "repository": "shop/api", "tag": "1.4.0#x|y", "entry_key": "k"}),
    json.dumps({"registry": REGISTRY, "repository": "Shop/API", "tag": "1.4.0", "entry_key": "k"}),
    json.dumps({"registry": "a" * 5000, "repository": "shop/api", "tag": "1.4.0", "entry_key": "k"}),
    json.dumps({"registry": REGISTRY, "repository": "shop/api", "tag": "1.4.0", "entry_key": "2026\u202e#\x00"}),
    json.dumps(
        {"registry": REGISTRY, "repository": "shop/api", "tag": "1.4.0", "entry_key": "k", "target": "sha256:evil"}
    ),
    "[" * 5000 + "]" * 5000,
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_fail_alone_and_write_nothing(world: World, body: str) -> None:
    world.released()
    before = world.stack.items()
    world.stack.sqs.send_message(QueueUrl=world.reverter.queue_url, MessageBody=body)

    world.reverter.run()

    # Reported as the batch's failed record (SQS delivers it again, then dead-letters it); nothing written.
    (failure,) = world.reverter.results[-1]["batchItemFailures"]
    assert failure["itemIdentifier"]
    assert world.stack.items() == before and world.alerts() == [] and world.reverter.put_images == 0


def test_a_registry_that_refuses_the_reverter_is_not_waited_for(world: World) -> None:
    from botocore.exceptions import ClientError

    world.released()
    world.attacked()

    def refused(**_: Any) -> None:
        # What ECR answers a role without access (another account's registry, say).
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "BatchGetImage")

    world.reverter.module.TAG_REVERTER._registry._client.meta.events.register("before-call.ecr.BatchGetImage", refused)

    world.reverter.run()  # the first attempt settles it: retrying cannot help

    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "may not read the previous image" in received.alert.revert.detail
    assert world.reverter.put_images == 0 and world.reverter.pending() == 0


# --- Regression tests: the red team's findings on opt-in revert -----------------------------------------


def pointer_item(world: World, tag: str = "1.4.0", repository: str = "shop/api") -> dict[str, Any]:
    pk = f"TAG#{REGISTRY}/{repository}:{tag}"
    (item,) = [i for i in world.stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == "POINTER"]
    return item


def squatted_then_released(world: World) -> None:
    """Someone pushes release 1.5.0 before CI does (a new tag: nothing to alert); then CI pushes the release,
    which the ledger sees as the overwrite. The squatter's image is never scanned."""
    world.registry.push("shop/api", "keep-x", ATTACK, "2026-11-20T08:59:00Z")
    squat = world.registry.push("shop/api", "1.5.0", ATTACK, "2026-11-20T08:59:30Z", event_id="squat")
    assert world.push_guard(squat) == {"outcome": "recorded", "alerts": []}
    world.registry.push("shop/api", "keep-1.5.0", RELEASE, "2026-11-20T09:00:00Z")
    ci = world.registry.push("shop/api", "1.5.0", RELEASE, "2026-11-20T09:00:01Z", event_id="ci")
    assert world.push_guard(ci)["revert"] == "requested"


def test_squat_then_ci_push_does_not_restore_the_squatters_image(world: World) -> None:
    squatted_then_released(world)

    world.reverter.run()

    # CI's release stays; the alert says why the previous content was not put back, and when it came.
    assert world.registry.tag_digest("shop/api", "1.5.0") == A
    assert world.reverter.put_images == 0
    (received,) = world.alerts()
    alert = received.alert
    assert (alert.previous_digest, alert.current_digest) == (B, A)
    assert alert.revert is not None and alert.revert.status is RevertStatus.NOT_REVERTED
    assert "never passed a scan: not restored" in alert.revert.detail
    assert "first pushed 2026-11-20 08:59:30Z" in alert.revert.detail and "Not reverted:" in alert.summary
    # The marker is gone with the settled request.
    assert "revert_to" not in pointer_item(world, "1.5.0")


def test_a_failing_previous_image_is_not_restored(world: World) -> None:
    world.released()
    # A rescan finds a CRITICAL finding in the release: no longer content to put back.
    world.scanned("shop/api", "1.4.0", A, "2026-11-20T09:30:00Z", counts={"CRITICAL": 1})
    world.alerts()  # the scan's own alert (a protected tag now failing) is not what this test is about
    world.attacked()

    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "did not pass its scan: not restored" in received.alert.revert.detail
    assert world.registry.tag_digest("shop/api", "1.4.0") == B and world.reverter.put_images == 0


def test_after_a_failed_revert_a_later_push_of_its_target_is_alerted(world: World) -> None:
    from botocore.exceptions import ClientError

    world.released()
    world.attacked()

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "deny"}}, "BatchGetImage")

    client = world.reverter.module.TAG_REVERTER._registry._client
    client.meta.events.register("before-call.ecr.BatchGetImage", denied)
    world.reverter.run()
    (first,) = world.alerts()
    assert first.alert.revert is not None and first.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "revert_to" not in pointer_item(world)
    client.meta.events.unregister("before-call.ecr.BatchGetImage", denied)

    # Days later someone pushes the release's digest over the attacker's: not Tagwarden's revert any more.
    later = world.registry.push("shop/api", "1.4.0", RELEASE, "2026-11-23T03:00:00Z", event_id="later")
    result = world.push_guard(later)

    assert result["outcome"] == "recorded"
    assert world.history()[-1] == ("PUSH", A, False)
    # An overwrite like any other (here of the attacker's unscanned image: not put back, but alerted).
    world.reverter.run()
    (received,) = world.alerts()
    assert (received.alert.previous_digest, received.alert.current_digest) == (B, A)


def test_a_stamped_marker_still_recognises_the_revert_push_after_the_outcome(world: World) -> None:
    world.released()
    world.attacked()
    world.reverter.run()
    # Settled REVERTED before ECR's event for the PutImage arrived: the marker is stamped, not removed.
    marker = pointer_item(world)
    assert marker["revert_to"]["S"] == A and "revert_settled_at" in marker
    (attack_alert,) = world.alerts()
    assert attack_alert.alert.revert is not None and attack_alert.alert.revert.status is RevertStatus.REVERTED

    assert world.push_guard(revert_push()) == {"outcome": "recorded", "alerts": []}

    assert world.alerts() == [] and world.history()[-1] == ("PUSH", A, True)
    assert "revert_to" not in pointer_item(world)


def test_another_region_of_the_same_account_is_not_reverted_and_alerted_at_once(world: World) -> None:
    from tests.support.events import ecr_image_action

    world.released()  # the stack's region holds shop/api:1.4.0 = the release

    def frankfurt(digest: str, time: str, event_id: str) -> dict[str, Any]:
        event = ecr_image_action(tag="1.4.0", digest=digest, time=time, event_id=event_id, account=ACCOUNT)
        event["region"] = "eu-central-1"
        return event

    world.push_guard(frankfurt(A, "2026-11-20T09:10:00Z", "fra-release"))
    result = world.push_guard(frankfurt(B, "2026-11-20T09:40:00Z", "fra-attack"))

    # Alerted as without revert: no request, so no false REVERTED from the stack region's repository.
    (received,) = world.alerts()
    assert "revert" not in result and result["alerts"] == [received.alert.alert_id]
    assert received.alert.region == "eu-central-1" and received.alert.revert is None
    assert world.reverter.pending() == 0 and world.reverter.put_images == 0


def test_the_reverter_checks_the_requests_registry_itself(stack: Stack, lambda_context: FakeLambdaContext) -> None:
    # A reverter that believes another account is the stack's (mis-deployed, or a request recorded otherwise).
    world = make_world(stack, lambda_context, reverter_account="210987654321")
    world.released()
    world.attacked()

    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert "is not the stack's own" in received.alert.revert.detail
    assert world.reverter.put_images == 0 and world.registry.tag_digest("shop/api", "1.4.0") == B


@pytest.mark.parametrize(
    ("operation", "code", "said"),
    [
        ("PutImage", "AccessDeniedException", "ECR refused PutImage: AccessDeniedException (explicit deny"),
        ("DescribeRepositories", "AccessDeniedException", "ECR refused DescribeRepositories: AccessDenied"),
        ("DescribeRepositories", "RepositoryNotFoundException", "the repository no longer exists"),
        ("PutImage", "KmsException", "ECR refused PutImage: KmsException"),
    ],
)
def test_a_refusal_settles_the_request_at_once(world: World, operation: str, code: str, said: str) -> None:
    from botocore.exceptions import ClientError

    world.released()
    world.attacked()

    def refused(**_: Any) -> None:
        # e.g. an attacker's repository policy denying the reverter's role.
        raise ClientError({"Error": {"Code": code, "Message": "explicit deny in repository policy"}}, operation)

    world.reverter.module.TAG_REVERTER._registry._client.meta.events.register(f"before-call.ecr.{operation}", refused)

    world.reverter.run()  # the first attempt: no retries, the alert goes out now

    assert world.reverter.results[-1]["batchItemFailures"] == []
    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.NOT_REVERTED
    assert said in received.alert.revert.detail
    assert world.reverter.pending() == 0 and world.registry.tag_digest("shop/api", "1.4.0") == B


def test_throttling_is_retried(world: World) -> None:
    from botocore.exceptions import ClientError

    world.released()
    world.attacked()
    throttled: list[int] = []

    def throttle(**_: Any) -> None:
        if not throttled:
            throttled.append(1)
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutImage")

    world.reverter.module.TAG_REVERTER._registry._client.meta.events.register("before-call.ecr.PutImage", throttle)

    world.reverter.run()  # throttled: delivered again, nothing published yet
    assert world.reverter.results[-1]["batchItemFailures"] and world.alerts() == []
    world.reverter.run()

    (received,) = world.alerts()
    assert received.alert.revert is not None and received.alert.revert.status is RevertStatus.REVERTED
    assert world.registry.tag_digest("shop/api", "1.4.0") == A


@pytest.mark.parametrize(("prefixes", "reverted"), [("shop", True), ("shop/", False)])
def test_prefixes_are_string_prefixes(
    stack: Stack, lambda_context: FakeLambdaContext, prefixes: str, reverted: bool
) -> None:
    # As documented (README, RevertRepositoryPrefixes): `shop` also covers `shopping`; `shop/` does not.
    world = make_world(stack, lambda_context, prefixes=prefixes)
    world.released("shopping")

    _, result = world.attacked("shopping")
    world.reverter.run()

    assert ("revert" in result) is reverted
    assert world.registry.tag_digest("shopping", "1.4.0") == (A if reverted else B)
