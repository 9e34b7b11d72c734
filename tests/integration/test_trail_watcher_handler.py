"""The trail watcher through its real `lambda_handler` (with the push guard's), on the template's table in moto,
with CloudTrail records as EventBridge delivers them (`events/trail_watcher/`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from tagwarden.events.parsing import InvalidEventError
from tagwarden.services.trail_watcher import TrailOutcome

from tests.integration.test_fuzz_handlers import JSON_VALUES, SETTINGS
from tests.support.events import load_event
from tests.support.handlers import Handler
from tests.support.stack import Stack

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"


def item_by_key(stack: Stack, pk: str, sk: str) -> dict[str, Any] | None:
    found = [i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == sk]
    return found[0] if found else None


def settings(stack: Stack, repository: str = "shop/api") -> str | None:
    item = item_by_key(stack, f"REPO#{REGISTRY}/{repository}", "SETTINGS")
    return item["mutability"]["S"] if item else None


def entry_actors(stack: Stack, tag: str = "latest") -> list[tuple[str, str, str | None]]:
    """(action, digest, actor principal) of each history entry, in time order."""
    pk = f"TAG#{REGISTRY}/shop/api:{tag}"
    entries = sorted(
        (i["sk"]["S"], i) for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"].startswith("MOVE#")
    )
    return [
        (i["action"]["S"], i["digest"]["S"], json.loads(i["actor"]["S"])["principal"] if "actor" in i else None)
        for _, i in entries
    ]


# --- tag protection posture ----------------------------------------------------------------------------


def test_mutability_switched_off_without_a_recorded_setting_alerts_high_naming_who(
    stack: Stack, trail_watcher: Handler
) -> None:
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")

    result = trail_watcher(event)

    (received,) = stack.received_alerts()
    alert = received.alert
    assert result == {"outcome": "setting_recorded", "alerts": [alert.alert_id]}
    assert (alert.type, alert.severity) == (AlertType.TAG_PROTECTION_WEAKENED, Severity.HIGH)
    assert (alert.registry, alert.repository, alert.tag) == (REGISTRY, "shop/api", None)
    assert "previous setting unknown" in alert.summary
    assert alert.actor is not None
    assert (alert.actor.principal, alert.actor.source_ip) == ("Mary_Major", "203.0.113.12")
    assert alert.actor.trail_event_id == event["detail"]["eventID"]
    assert alert.evidence == (event["detail"]["eventID"],)
    assert received.raw["actor"]["arn"] == "arn:aws:iam::111122223333:user/Mary_Major"
    assert settings(stack) == "MUTABLE"


def test_duplicate_deliveries_alert_once(stack: Stack, trail_watcher: Handler) -> None:
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")
    trail_watcher(event)
    before = stack.items()
    again = copy.deepcopy(event)
    again["id"] = "a-redelivery-with-another-envelope-id"  # the CloudTrail eventID is what identifies it

    assert trail_watcher(again) == {"outcome": "duplicate", "alerts": []}
    assert trail_watcher(event) == {"outcome": "duplicate", "alerts": []}
    assert len(stack.received_alerts()) == 1
    assert stack.items() == before


def test_weakening_is_judged_against_the_recorded_setting(stack: Stack, trail_watcher: Handler) -> None:
    immutable = load_event("trail_watcher/put_image_tag_mutability_immutable.json")  # 08:30, latest excluded
    exclusion = load_event("trail_watcher/put_image_tag_mutability_exclusion.json")  # 08:40, v* excluded too
    mutable = load_event("trail_watcher/put_image_tag_mutability_mutable.json")  # 09:57, MUTABLE

    assert trail_watcher(immutable) == {"outcome": "setting_recorded", "alerts": []}
    weakened = trail_watcher(exclusion)
    already_open = trail_watcher(mutable)

    (received,) = stack.received_alerts()
    assert weakened["alerts"] == [received.alert.alert_id]
    assert "it was IMMUTABLE_WITH_EXCLUSION (latest)" in received.alert.summary
    assert "v*" in received.alert.summary and "v[0-9]*.[0-9]*" in received.alert.summary
    # Protected tags could already move before 09:57: no new weakening.
    assert already_open == {"outcome": "setting_recorded", "alerts": []}
    assert settings(stack) == "MUTABLE"


def test_a_late_older_record_never_overwrites_the_newer_setting(stack: Stack, trail_watcher: Handler) -> None:
    trail_watcher(load_event("trail_watcher/put_image_tag_mutability_mutable.json"))  # 09:57
    stack.received_alerts()

    late = trail_watcher(load_event("trail_watcher/put_image_tag_mutability_immutable.json"))  # 08:30

    assert late == {"outcome": "setting_late", "alerts": []}
    assert settings(stack) == "MUTABLE"
    # A late record that weakened protection is still alerted, with its previous setting unknown.
    late_weakening = trail_watcher(load_event("trail_watcher/put_image_tag_mutability_exclusion.json"))  # 08:40
    assert late_weakening["outcome"] == "setting_late"
    (received,) = stack.received_alerts()
    assert "previous setting unknown" in received.alert.summary
    assert settings(stack) == "MUTABLE"


def test_a_repository_created_mutable_alerts(stack: Stack, trail_watcher: Handler) -> None:
    trail_watcher(load_event("trail_watcher/create_repository.json"))

    (received,) = stack.received_alerts()
    assert received.alert.repository == "shop/web"
    assert "it was created" in received.alert.summary
    assert received.alert.actor is not None and received.alert.actor.principal == "Admin/Mary_Major"
    assert settings(stack, "shop/web") == "MUTABLE"


def test_a_creation_template_that_lets_protected_tags_move_alerts_with_its_prefix(
    stack: Stack, trail_watcher: Handler
) -> None:
    trail_watcher(load_event("trail_watcher/create_repository_creation_template.json"))

    (received,) = stack.received_alerts()
    assert received.alert.repository == "team-a"
    assert "creation template team-a" in received.alert.summary
    assert item_by_key(stack, f"TEMPLATE#{REGISTRY}/team-a", "SETTINGS") is not None


def test_failed_calls_are_ignored(stack: Stack, trail_watcher: Handler) -> None:
    assert trail_watcher(load_event("trail_watcher/put_image_failed.json")) == {"outcome": "ignored", "alerts": []}
    assert stack.items() == []


@pytest.mark.parametrize(
    ("sample", "change", "field"),
    [
        ("put_image.json", lambda d: d.pop("eventID"), "eventID"),
        (
            "put_image.json",
            lambda d: d["responseElements"]["image"]["imageId"].update(imageDigest="sha256:zz"),
            "imageDigest",
        ),
        ("put_image.json", lambda d: d.update(responseElements=None), "imageDigest is required"),
        ("put_image.json", lambda d: d["requestParameters"].update(repositoryName="Shop#API"), "repositoryName"),
        (
            "put_image_tag_mutability_exclusion.json",
            lambda d: d["requestParameters"]["imageTagMutabilityExclusionFilters"].append(
                {"filterType": "WILDCARD", "filter": "a|b"}
            ),
            "filter",
        ),
        (
            "put_image_tag_mutability_mutable.json",
            lambda d: d["requestParameters"].update(imageTagMutability="OPEN"),
            "imageTagMutability",
        ),
        ("create_repository_creation_template.json", lambda d: d["requestParameters"].update(prefix="#x"), "prefix"),
        ("put_image.json", lambda d: d.update(eventName="DeleteRepository"), "detail"),
    ],
)
def test_malformed_records_fail_naming_the_field_and_write_nothing(
    stack: Stack, trail_watcher: Handler, sample: str, change: Any, field: str
) -> None:
    event = load_event(f"trail_watcher/{sample}")
    change(event["detail"])

    # Raised: EventBridge's async invocation retries, then the event goes to the dead-letter queue.
    with pytest.raises(InvalidEventError, match=field.replace("*", r"\*")):
        trail_watcher(event)
    assert stack.items() == []


# --- who pushed ----------------------------------------------------------------------------------------


def test_cloudtrail_after_the_push_names_the_actor_on_the_history_entry(
    stack: Stack, push_guard: Handler, trail_watcher: Handler
) -> None:
    push_guard(load_event("push_guard/push_tagged.json"))  # latest -> A
    push_guard(load_event("push_guard/push_overwrite.json"))  # latest -> B, 10:02:03
    (received,) = stack.received_alerts()
    assert received.alert.actor is None  # the alert never waits for CloudTrail

    result = trail_watcher(load_event("trail_watcher/put_image.json"))  # PutImage at 10:02:02

    assert result["outcome"] == "actor_recorded"
    assert entry_actors(stack) == [("PUSH", A, None), ("PUSH", B, "ci-release/gha-run-4711")]
    assert trail_watcher(load_event("trail_watcher/put_image.json"))["outcome"] == "actor_recorded"  # duplicate
    assert entry_actors(stack) == [("PUSH", A, None), ("PUSH", B, "ci-release/gha-run-4711")]


def test_cloudtrail_before_the_push_puts_the_actor_in_the_alert(
    stack: Stack, push_guard: Handler, trail_watcher: Handler
) -> None:
    push_guard(load_event("push_guard/push_tagged.json"))
    put_image = load_event("trail_watcher/put_image.json")
    assert trail_watcher(put_image)["outcome"] == "actor_pending"
    assert trail_watcher(put_image)["outcome"] == "actor_pending"  # twice: still one pending actor

    push_guard(load_event("push_guard/push_overwrite.json"))

    (received,) = stack.received_alerts()
    assert received.alert.actor is not None
    assert received.alert.actor.principal == "ci-release/gha-run-4711"
    assert received.alert.actor.trail_event_id == put_image["detail"]["eventID"]
    assert entry_actors(stack) == [("PUSH", A, None), ("PUSH", B, "ci-release/gha-run-4711")]
    # A redelivery of the CloudTrail record after the push changes nothing.
    assert trail_watcher(put_image)["outcome"] == "actor_recorded"
    assert entry_actors(stack)[-1][2] == "ci-release/gha-run-4711"


def test_an_actor_outside_the_window_is_not_this_push(
    stack: Stack, push_guard: Handler, trail_watcher: Handler
) -> None:
    put_image = load_event("trail_watcher/put_image.json")
    put_image["detail"]["eventTime"] = "2026-11-20T09:40:00Z"  # 22 minutes before the push: another push
    trail_watcher(put_image)
    push_guard(load_event("push_guard/push_tagged.json"))
    push_guard(load_event("push_guard/push_overwrite.json"))

    (received,) = stack.received_alerts()
    assert received.alert.actor is None
    assert entry_actors(stack) == [("PUSH", A, None), ("PUSH", B, None)]


def test_batch_delete_names_who_deleted_the_tag(stack: Stack, push_guard: Handler, trail_watcher: Handler) -> None:
    push_guard(load_event("push_guard/push_tagged.json"))
    trail_watcher(load_event("trail_watcher/batch_delete_image.json"))  # before the ECR delete event
    push_guard(load_event("push_guard/delete_tag.json"))

    assert entry_actors(stack) == [("PUSH", A, None), ("DELETE", A, "Mary_Major")]


def test_history_shows_who_pushed_once_known(stack: Stack, push_guard: Handler, trail_watcher: Handler) -> None:
    from tests.integration.test_cli import tagwarden

    push_guard(load_event("push_guard/push_tagged.json"))
    push_guard(load_event("push_guard/push_overwrite.json"))
    reference = f"{REGISTRY}/shop/api:latest"
    before = json.loads(tagwarden("--json", "history", reference, "--table", stack.table_name).stdout)
    assert [entry["actor"] for entry in before] == [None, None]  # not yet known

    trail_watcher(load_event("trail_watcher/put_image.json"))

    table = tagwarden("history", reference, "--table", stack.table_name, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "by ci-release/gha-run-4711 from 198.51.100.24" in table.stdout
    after = json.loads(tagwarden("--json", "history", reference, "--table", stack.table_name).stdout)
    assert after[0]["actor"] is None
    assert after[1]["actor"]["principal"] == "ci-release/gha-run-4711"
    assert after[1]["actor"]["arn"] == "arn:aws:sts::111122223333:assumed-role/ci-release/gha-run-4711"
    assert after[1]["actor"]["trail_event_id"] == "2bfd4ee2-2178-4a82-a27d-b12939923f0f"


def test_dead_lettered_records_replay_through_the_trail_watcher(
    stack: Stack, push_guard: Handler, tmp_path: Any
) -> None:
    from tests.integration.test_cli import tagwarden, write_events

    push_guard(load_event("push_guard/push_tagged.json"))
    push_guard(load_event("push_guard/push_overwrite.json"))
    stack.received_alerts()
    records = [
        load_event("trail_watcher/put_image.json"),
        # As the function's on-failure destination keeps a failed invocation: the event in requestPayload.
        {
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": load_event("trail_watcher/put_image_tag_mutability_mutable.json"),
        },
        load_event("trail_watcher/put_image_failed.json"),
    ]
    path = write_events(tmp_path / "trail.json", records)

    result = tagwarden("--json", "replay", str(path), "--table", stack.table_name, "--topic-arn", stack.topic_arn)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(e["function"], e["outcome"]) for e in report["events"]] == [
        ("trail-watcher", "actor_recorded"),
        ("trail-watcher", "setting_recorded"),
        ("trail-watcher", "ignored"),
    ]
    (received,) = stack.received_alerts()
    assert received.alert.type is AlertType.TAG_PROTECTION_WEAKENED
    assert entry_actors(stack)[-1] == ("PUSH", B, "ci-release/gha-run-4711")


# --- hostile input -------------------------------------------------------------------------------------

TRAIL_KEYS = ["eventID", "eventTime", "eventName", "eventSource", "awsRegion", "userIdentity", "sourceIPAddress",
              "userAgent", "errorCode", "requestParameters", "responseElements"]  # fmt: skip
CALL_KEYS = ["repositoryName", "registryId", "imageTag", "imageTagMutability", "imageTagMutabilityExclusionFilters",
             "prefix", "image", "imageIds", "repository", "repositoryCreationTemplate"]  # fmt: skip


SAMPLES = st.sampled_from(
    [
        "trail_watcher/put_image.json",
        "trail_watcher/batch_delete_image.json",
        "trail_watcher/put_image_tag_mutability_exclusion.json",
        "trail_watcher/create_repository_creation_template.json",
    ]
)
MUTATION = st.tuples(st.sampled_from(["detail", "request", "response"]), st.integers(0, 100), JSON_VALUES)


@SETTINGS
@given(sample=SAMPLES, mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_hostile_records_are_rejected_cleanly(
    stack: Stack, trail_watcher: Handler, sample: str, mutations: list[tuple[str, int, Any]]
) -> None:
    event = load_event(sample)
    detail = event["detail"]
    for where, pick, value in mutations:
        if where == "detail":
            detail[TRAIL_KEYS[pick % len(TRAIL_KEYS)]] = value
        else:
            target = detail.get("requestParameters" if where == "request" else "responseElements")
            if isinstance(target, dict):
                target[CALL_KEYS[pick % len(CALL_KEYS)]] = value
    before = stack.items()
    try:
        result = trail_watcher(event)
    except InvalidEventError:
        assert stack.items() == before, "a rejected record wrote something"
        return
    assert result["outcome"] in {outcome.value for outcome in TrailOutcome}


# --- the race between the two records ------------------------------------------------------------------


def test_an_actor_left_while_the_push_is_being_decided_is_not_lost(stack: Stack) -> None:
    """The trail watcher leaves its actor after the push guard read and before it wrote: the push guard's write
    fails on its check of the pending actor, and its retry reads the actor into the entry and the alert."""
    from tagwarden.adapters.dynamodb.table import LedgerTable
    from tagwarden.adapters.dynamodb.tag_ledger import DynamoDbTagLedger
    from tagwarden.adapters.dynamodb.trail_ledger import DynamoDbTrailLedger
    from tagwarden.adapters.sns_publisher import SnsAlertPublisher
    from tagwarden.domain.identity import CallsIdentified
    from tagwarden.domain.tag_policy import TagPolicy
    from tagwarden.events.cloudtrail import EcrApiCallEvent
    from tagwarden.events.ecr import EcrImageActionEvent
    from tagwarden.ports import TagSnapshot
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.wiring import alert_delivery

    table = LedgerTable(stack.dynamodb, stack.table_name)
    trail_fact = EcrApiCallEvent.model_validate(load_event("trail_watcher/put_image.json")).to_fact()
    assert isinstance(trail_fact, CallsIdentified)
    (report,) = trail_fact.reports
    reads: list[TagSnapshot] = []

    class RacedLedger(DynamoDbTagLedger):
        def read_for_action(self, *args: Any, **kwargs: Any) -> TagSnapshot:
            snapshot = super().read_for_action(*args, **kwargs)
            reads.append(snapshot)
            if len(reads) == 2:  # the overwrite's first read: CloudTrail's record lands right after it
                DynamoDbTrailLedger(table).leave_actor(report)
            return snapshot

    delivery = alert_delivery(table, SnsAlertPublisher(stack.sns, stack.topic_arn))
    guard = PushGuard(RacedLedger(table), delivery, TagPolicy())
    for sample in ("push_guard/push_tagged.json", "push_guard/push_overwrite.json"):
        guard.handle(EcrImageActionEvent.model_validate(load_event(sample)).to_fact())

    assert [snapshot.pending_actor is not None for snapshot in reads] == [False, False, True]
    (received,) = stack.received_alerts()
    assert received.alert.actor is not None and received.alert.actor.principal == "ci-release/gha-run-4711"
    assert entry_actors(stack) == [("PUSH", A, None), ("PUSH", B, "ci-release/gha-run-4711")]


def test_requests_per_record(stack: Stack, push_guard: Handler) -> None:
    from tests.support.handlers import FakeLambdaContext, load_function_module
    from tests.support.requests import RequestLog, dynamodb_operations

    requests = RequestLog()
    requests.attach()  # before the handler's clients exist
    module = load_function_module("trail_watcher", stack.environment())

    def handled(sample: str) -> tuple[dict[str, Any], dict[str, int]]:
        with requests.record() as calls:
            result = module.lambda_handler(load_event(f"trail_watcher/{sample}"), FakeLambdaContext())
        return result, dict(dynamodb_operations([c for c in calls if not c.alert_bookkeeping]))

    assert handled("put_image_tag_mutability_immutable.json") == (
        {"outcome": "setting_recorded", "alerts": []},
        {"BatchGetItem": 1, "TransactWriteItems": 1},
    )
    assert handled("put_image_tag_mutability_immutable.json")[1] == {"BatchGetItem": 1}  # duplicate
    # Each look at the history reads outward from the call's time on both sides: one Query a side (a page
    # holds the whole window here), two looks when the actor is left for the push guard.
    assert handled("put_image.json")[1] == {"Query": 4, "PutItem": 1}  # left for the push guard
    push_guard(load_event("push_guard/push_overwrite.json"))
    assert handled("put_image.json")[1] == {"Query": 2, "UpdateItem": 1}  # named on the entry
