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


# --- red team findings (regressions) --------------------------------------------------------------------


def mutability_change(mutability: str, time: str, event_id: str, principal: str = "Mary_Major") -> dict[str, Any]:
    """A PutImageTagMutability record (the sample's shape) with its setting, time, id and caller replaced."""
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")
    detail = event["detail"]
    detail.update(eventTime=time, eventID=event_id)
    detail["userIdentity"].update(userName=principal, arn=f"arn:aws:iam::111122223333:user/{principal}")
    for part in ("requestParameters", "responseElements"):
        detail[part]["imageTagMutability"] = mutability
        detail[part].pop("imageTagMutabilityExclusionFilters", None)
    return event


def test_a_5000_character_user_agent_is_cut_and_the_weakening_still_alerts(
    stack: Stack, trail_watcher: Handler
) -> None:
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")
    event["detail"]["userAgent"] = "aws-cli/2.17 " + "x" * 5000
    event["detail"]["userIdentity"]["arn"] = "arn:aws:iam::111122223333:user/" + "m" * 3000
    event["detail"]["sourceIPAddress"] = "203.0.113.12" + " " * 400

    result = trail_watcher(event)

    (received,) = stack.received_alerts()
    assert result == {"outcome": "setting_recorded", "alerts": [received.alert.alert_id]}
    assert received.alert.type is AlertType.TAG_PROTECTION_WEAKENED
    actor = received.alert.actor
    assert actor is not None and actor.user_agent is not None and actor.arn is not None
    assert actor.user_agent.startswith("aws-cli/2.17 xxx") and actor.user_agent.endswith("...[cut]")
    assert len(actor.user_agent) == 1024 and len(actor.arn) == 2048
    assert actor.source_ip is not None and len(actor.source_ip) == 256
    assert settings(stack) == "MUTABLE"


def test_a_setting_spelled_in_lower_case_is_still_read(stack: Stack, trail_watcher: Handler) -> None:
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")
    event["detail"]["requestParameters"]["imageTagMutability"] = "mutable"
    event["detail"]["responseElements"]["imageTagMutability"] = "mutable"

    assert trail_watcher(event)["outcome"] == "setting_recorded"
    assert len(stack.received_alerts()) == 1 and settings(stack) == "MUTABLE"


@pytest.mark.parametrize("identity", [None, "root", ["a"], {"sessionContext": 7, "userName": {"x": 1}}])
def test_a_record_without_a_readable_user_identity_still_alerts_naming_nobody(
    stack: Stack, trail_watcher: Handler, identity: Any
) -> None:
    event = load_event("trail_watcher/put_image_tag_mutability_mutable.json")
    if identity is None:
        del event["detail"]["userIdentity"]
    else:
        event["detail"]["userIdentity"] = identity

    assert trail_watcher(event)["outcome"] == "setting_recorded"

    (received,) = stack.received_alerts()
    assert "Changed by an unknown identity" in received.alert.summary
    assert settings(stack) == "MUTABLE"


@pytest.mark.parametrize("attacker_first", [True, False])
def test_two_changes_in_one_second_alert_as_order_unknown_whichever_arrives_first(
    stack: Stack, trail_watcher: Handler, attacker_first: bool
) -> None:
    # Given a repository known MUTABLE for weeks (alerted then).
    trail_watcher(mutability_change("MUTABLE", "2026-11-01T00:00:00Z", "11111111-0000-4000-8000-000000000000"))
    stack.received_alerts()
    # When an admin hardens it and an attacker opens it again within the same second: CloudTrail's one-second
    # times cannot say which came last, and the event ids (random) would put the admin's last.
    admin = mutability_change("IMMUTABLE", "2026-11-20T10:00:00Z", "ffffffff-0000-4000-8000-000000000000", "admin")
    attacker = mutability_change("MUTABLE", "2026-11-20T10:00:00Z", "00000000-0000-4000-8000-000000000000", "mallory")
    first, second = (attacker, admin) if attacker_first else (admin, attacker)
    trail_watcher(first)
    result = trail_watcher(second)

    # Then one alert, saying the order is unknown and naming who opened it; the ledger keeps the open setting.
    (received,) = stack.received_alerts()
    assert result == {"outcome": "setting_order_unknown", "alerts": [received.alert.alert_id]}
    assert "order unknown within the same second" in received.alert.summary
    assert received.alert.actor is not None and received.alert.actor.principal == "mallory"
    assert settings(stack) == "MUTABLE"
    assert trail_watcher(second)["outcome"] == "duplicate" and stack.received_alerts() == []
    # The first one delivered again: the pair is already alerted, nothing new.
    assert trail_watcher(first)["outcome"] in {"duplicate", "setting_order_unknown"}
    assert stack.received_alerts() == [] and settings(stack) == "MUTABLE"
    # The next change (another second) is judged with the previous setting unknown.
    later = trail_watcher(mutability_change("MUTABLE", "2026-11-20T10:05:00Z", "22222222-0000-4000-8000-000000000000"))
    (received,) = stack.received_alerts()
    assert later["outcome"] == "setting_recorded" and "previous setting unknown" in received.alert.summary


def test_same_second_changes_that_agree_need_no_alert(stack: Stack, trail_watcher: Handler) -> None:
    trail_watcher(mutability_change("IMMUTABLE", "2026-11-20T10:00:00Z", "aaaaaaaa-0000-4000-8000-000000000000"))
    result = trail_watcher(
        mutability_change("IMMUTABLE", "2026-11-20T10:00:00Z", "00000000-0000-4000-8000-000000000000")
    )

    assert result == {"outcome": "setting_late", "alerts": []}
    assert stack.received_alerts() == [] and settings(stack) == "IMMUTABLE"


def test_a_flood_of_pushes_does_not_hide_who_pushed(stack: Stack, push_guard: Handler, trail_watcher: Handler) -> None:
    import hashlib
    from datetime import UTC, datetime, timedelta

    from tests.support.events import ecr_image_action

    def digest(i: int) -> str:
        return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()

    def at(seconds: int) -> str:
        return (datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Given the attacker's push at 10:00:00, then 110 pushes of other digests within the next 110 seconds
    # (more than one page of the history between the push and the CloudTrail record).
    push_guard(ecr_image_action(tag="latest", digest=digest(999), time=at(0)))
    for i in range(1, 111):
        push_guard(ecr_image_action(tag="latest", digest=digest(i % 2), time=at(i)))
    stack.received_alerts()
    # When CloudTrail's PutImage of the attacker's digest arrives stamped 110 seconds later (within the window).
    put_image = load_event("trail_watcher/put_image.json")
    put_image["detail"]["eventTime"] = at(110)
    put_image["detail"]["responseElements"]["image"]["imageId"]["imageDigest"] = digest(999)

    result = trail_watcher(put_image)

    # Then the entry is found by reading outward past the flood, and the actor named on it.
    assert result["outcome"] == "actor_recorded"
    assert entry_actors(stack)[0] == ("PUSH", digest(999), "ci-release/gha-run-4711")


def test_reading_outward_stops_at_its_page_bound(stack: Stack) -> None:
    from tagwarden.adapters.dynamodb.table import LedgerTable

    table = LedgerTable(stack.dynamodb, stack.table_name)
    for i in range(250):
        stack.dynamodb.put_item(
            TableName=stack.table_name,
            Item={"pk": {"S": "TAG#t"}, "sk": {"S": f"MOVE#{i:04d}"}, "action": {"S": "PUSH"}, "digest": {"S": A}},
        )
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={"pk": {"S": "TAG#t"}, "sk": {"S": "MOVE#0250"}, "action": {"S": "PUSH"}, "digest": {"S": B}},
    )

    def first(max_pages: int) -> Any:
        return table.first_matching(
            "TAG#t", "MOVE#", "MOVE$", forward=True, conditions={"digest": B}, page_size=100, max_pages=max_pages
        )

    assert first(2) is None  # 200 entries read, the match is the 251st
    assert first(3) is not None and first(3)["sk"] == "MOVE#0250"


def test_deleting_a_protecting_creation_template_alerts(stack: Stack, trail_watcher: Handler) -> None:
    event = load_event("trail_watcher/delete_repository_creation_template.json")  # it was IMMUTABLE

    result = trail_watcher(event)

    (received,) = stack.received_alerts()
    assert result == {"outcome": "setting_recorded", "alerts": [received.alert.alert_id]}
    assert received.alert.repository == "team-a"
    assert "was deleted (it was IMMUTABLE)" in received.alert.summary
    assert "ECR's default MUTABLE" in received.alert.summary and "Deleted by Mary_Major" in received.alert.summary
    item = item_by_key(stack, f"TEMPLATE#{REGISTRY}/team-a", "SETTINGS")
    assert item is not None and item["mutability"]["S"] == "MUTABLE"
    assert trail_watcher(event)["outcome"] == "duplicate" and stack.received_alerts() == []


@pytest.mark.parametrize(
    ("deleted", "alerted", "wording"),
    [
        ({"imageTagMutability": "MUTABLE"}, False, None),  # it let tags move already
        ({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [
            {"filterType": "WILDCARD", "filter": "latest"}]}, True, "it was IMMUTABLE_WITH_EXCLUSION (latest)"),
        (None, True, "previous setting unknown"),  # no answer: the template's setting is unknown
    ],
)  # fmt: skip
def test_a_deleted_template_alerts_when_it_protected_or_its_state_is_unknown(
    stack: Stack, trail_watcher: Handler, deleted: dict[str, Any] | None, alerted: bool, wording: str | None
) -> None:
    event = load_event("trail_watcher/delete_repository_creation_template.json")
    template = event["detail"]["responseElements"]["repositoryCreationTemplate"]
    if deleted is None:
        event["detail"]["responseElements"] = None
    else:
        template.pop("imageTagMutability")
        template.update(deleted)

    trail_watcher(event)

    received = stack.received_alerts()
    assert len(received) == int(alerted)
    if wording is not None:
        assert wording in received[0].alert.summary


def test_a_delete_by_digest_names_who_deleted_each_tag_the_ledger_knows_on_it(
    stack: Stack, push_guard: Handler, trail_watcher: Handler
) -> None:
    from tests.support.events import ecr_image_action

    push_guard(load_event("push_guard/push_tagged.json"))  # latest -> A
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T09:15:00Z"))
    push_guard(load_event("push_guard/delete_tag.json"))  # latest deleted (A), 09:58:30
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T09:58:30Z", action="DELETE"))
    event = load_event("trail_watcher/batch_delete_image.json")
    event["detail"]["requestParameters"]["imageIds"] = [{"imageDigest": A}]
    event["detail"]["responseElements"]["imageIds"] = [{"imageDigest": A}]

    result = trail_watcher(event)

    assert result["outcome"] == "actor_recorded"
    assert entry_actors(stack) == [("PUSH", A, None), ("DELETE", A, "Mary_Major")]
    assert entry_actors(stack, "v1.4.2") == [("PUSH", A, None), ("DELETE", A, "Mary_Major")]


def test_a_delete_by_digest_of_an_unknown_digest_names_nobody_and_leaves_nothing(
    stack: Stack, trail_watcher: Handler
) -> None:
    event = load_event("trail_watcher/batch_delete_image.json")
    event["detail"]["responseElements"]["imageIds"] = [{"imageDigest": B}]

    assert trail_watcher(event)["outcome"] == "actor_unmatched"
    assert stack.items() == []
