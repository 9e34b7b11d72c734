"""The push guard through its real `lambda_handler`, on the template's table in moto, with real-shaped events."""

from __future__ import annotations

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from tagwarden.events.parsing import InvalidEventError
from tagwarden.ports import AlertDeliveryError

from tests.support.events import ecr_image_action, load_event
from tests.support.handlers import Handler, load_function_module
from tests.support.stack import Stack

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
A, B, C = ("sha256:" + c * 64 for c in "abc")


def tag_items(stack: Stack, tag: str = "latest") -> dict[str, dict[str, object]]:
    pk = f"TAG#{REGISTRY}/shop/api:{tag}"
    return {item["sk"]["S"]: item for item in stack.items() if item["pk"]["S"] == pk}


def current_digest(stack: Stack, tag: str = "latest") -> str | None:
    pointer = tag_items(stack, tag).get("POINTER")
    assert pointer is not None
    digest = pointer.get("digest")
    return digest["S"] if isinstance(digest, dict) else None


def history(stack: Stack, tag: str = "latest") -> list[tuple[str, str, str | None]]:
    moves = sorted((sk, item) for sk, item in tag_items(stack, tag).items() if sk.startswith("MOVE#"))
    return [
        (
            item["action"]["S"],  # type: ignore[index]
            item["digest"]["S"],  # type: ignore[index]
            item["previous_digest"]["S"] if "previous_digest" in item else None,  # type: ignore[index]
        )
        for _, item in moves
    ]


def test_sample_tagged_push_records_pointer_history_and_digest(stack: Stack, push_guard: Handler) -> None:
    event = load_event("push_guard/push_tagged.json")
    digest, tag = event["detail"]["image-digest"], event["detail"]["image-tag"]

    result = push_guard(event)

    assert result == {"outcome": "recorded", "alerts": []}
    assert current_digest(stack, tag) == digest
    assert history(stack, tag) == [("PUSH", digest, None)]
    image_keys = [item["pk"]["S"] for item in stack.items() if item["sk"]["S"] == "IMAGE"]
    assert image_keys == [f"IMAGE#{REGISTRY}/shop/api@{digest}"]
    assert stack.received_alerts() == []


def test_overwrite_publishes_one_alert_in_schema_v1(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))

    result = push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    (received,) = stack.received_alerts()
    assert result["alerts"] == [received.alert.alert_id]
    alert = received.alert
    assert (alert.type, alert.severity) == (AlertType.TAG_OVERWRITTEN, Severity.MEDIUM)
    assert (alert.previous_digest, alert.current_digest, alert.tag) == (A, B, "main")
    assert (alert.registry, alert.account, alert.region) == (REGISTRY, "111122223333", "eu-west-1")
    assert alert.evidence == ("e-2",)
    assert received.attributes == {
        "type": "TAG_OVERWRITTEN",
        "severity": "MEDIUM",
        "repository": "shop/api",
        "alert_id": alert.alert_id,
    }
    assert received.subject == "[MEDIUM] TAG_OVERWRITTEN shop/api:main"
    assert set(received.raw) == {
        "schema", "alert_id", "type", "severity", "summary", "detected_at", "event_time", "account", "region",
        "registry", "repository", "tag", "previous_digest", "current_digest", "scanned_digest", "scanned_at",
        "kubernetes", "in_use", "evidence", "runbook", "actor", "revert",
    }  # fmt: skip
    assert received.raw["schema"] == "tagwarden.alert.v1"
    assert received.raw["kubernetes"] is None


@pytest.mark.parametrize(("tag", "severity"), [("1.4.0", Severity.HIGH), ("latest", Severity.LOW)])
def test_overwrite_severity_follows_the_tag_policy(
    stack: Stack, push_guard: Handler, tag: str, severity: Severity
) -> None:
    push_guard(ecr_image_action(tag=tag, digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag=tag, digest=B, time="2026-11-20T10:05:00Z"))
    (received,) = stack.received_alerts()
    assert received.alert.severity is severity


def test_push_of_the_same_digest_again_is_not_an_overwrite(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:05:00Z"))
    assert stack.received_alerts() == []
    assert history(stack) == [("PUSH", A, None), ("PUSH", A, A)]


def test_duplicate_delivery_changes_nothing_and_alerts_nothing(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    push_guard(overwrite)
    before = stack.items()

    again = push_guard(overwrite)

    assert again == {"outcome": "duplicate", "alerts": []}
    assert len(stack.received_alerts()) == 1
    assert stack.items() == before


def test_older_event_never_moves_the_pointer_back_but_lands_in_history(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="latest", digest=C, time="2026-11-20T10:10:00Z"))

    result = push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z"))

    assert result["outcome"] == "late"
    assert current_digest(stack) == C
    # The late entry is linked in, so the history reads as one chain in time order.
    assert history(stack) == [("PUSH", A, None), ("PUSH", B, A), ("PUSH", C, B)]
    moves = [(r.alert.previous_digest, r.alert.current_digest) for r in stack.received_alerts()]
    assert moves == [(A, C), (A, B)]


def test_reversed_delivery_still_alerts_the_overwrite(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z", event_id="newer"))
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z", event_id="older"))

    assert current_digest(stack) == B
    assert history(stack) == [("PUSH", A, None), ("PUSH", B, A)]
    (received,) = stack.received_alerts()
    assert (received.alert.previous_digest, received.alert.current_digest) == (A, B)
    assert received.alert.evidence == ("newer", "older")


def test_delete_then_push_is_still_an_overwrite(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="1.4.0", digest=A, action="DELETE", time="2026-11-20T10:01:00Z"))
    assert current_digest(stack, "1.4.0") is None

    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:02:00Z"))

    assert current_digest(stack, "1.4.0") == B
    assert history(stack, "1.4.0") == [("PUSH", A, None), ("DELETE", A, A), ("PUSH", B, A)]
    (received,) = stack.received_alerts()
    assert received.alert.severity is Severity.HIGH
    assert "deleted and pushed again" in received.alert.summary


def test_delete_sample_removes_the_pointer_but_keeps_history(stack: Stack, push_guard: Handler) -> None:
    push = load_event("push_guard/push_tagged.json")
    delete = load_event("push_guard/delete_tag.json")
    push_guard(push)
    push_guard(delete)
    tag = delete["detail"]["image-tag"]
    assert current_digest(stack, tag) is None
    assert [action for action, _, _ in history(stack, tag)] == ["PUSH", "DELETE"]


def test_untagged_push_records_the_digest_only(stack: Stack, push_guard: Handler) -> None:
    event = load_event("push_guard/push_untagged.json")
    assert push_guard(event)["outcome"] == "untagged"
    items = stack.items()
    assert [item["pk"]["S"] for item in items] == [f"IMAGE#{REGISTRY}/shop/api@{event['detail']['image-digest']}"]
    assert "tags" not in items[0]
    assert not any(":" in item["pk"]["S"].split("@")[0].rsplit("/", 1)[-1] for item in items)


@pytest.mark.parametrize("sample", ["push_guard/push_failed.json", "push_guard/other_action.json"])
def test_failed_results_and_other_actions_are_ignored(stack: Stack, push_guard: Handler, sample: str) -> None:
    assert push_guard(load_event(sample)) == {"outcome": "ignored", "alerts": []}
    assert stack.items() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["detail"].pop("repository-name"), "detail.repository-name"),
        (lambda e: e["detail"].update({"image-digest": 42}), "detail.image-digest"),
        (lambda e: e["detail"].pop("image-digest"), "image-digest is required"),
        (lambda e: e["detail"].update({"image-tag": "latest#POINTER"}), "detail.image-tag"),
        (lambda e: e.update({"time": "yesterday"}), "time"),
        (lambda e: e.update({"account": "1|2"}), "account"),
    ],
)
def test_invalid_event_names_the_field_and_writes_nothing(
    stack: Stack, push_guard: Handler, change: object, field: str
) -> None:
    event = ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z")
    change(event)  # type: ignore[operator]
    with pytest.raises(InvalidEventError, match=field.replace(".", r"\.")):
        push_guard(event)
    assert stack.items() == []


def test_an_alert_that_failed_to_publish_is_delivered_by_the_retry_exactly_once(
    stack: Stack, push_guard: Handler, lambda_context: object
) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    overwrite = ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z")
    broken = load_function_module(
        "push_guard", {**stack.environment(), "ALERTS_TOPIC_ARN": stack.topic_arn + "-missing"}
    )
    with pytest.raises(AlertDeliveryError):
        broken.lambda_handler(overwrite, lambda_context)
    assert current_digest(stack) == B  # the ledger write stands; the alert is pending on its history entry

    first_retry = push_guard(overwrite)
    second_retry = push_guard(overwrite)

    assert first_retry["outcome"] == "duplicate"
    assert len(first_retry["alerts"]) == 1
    assert second_retry == {"outcome": "duplicate", "alerts": []}
    assert len(stack.received_alerts()) == 1


def test_same_repository_in_two_accounts_are_different_tags(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:05:00Z", account="444455556666"))
    assert stack.received_alerts() == []
    pointers = sorted(item["pk"]["S"] for item in stack.items() if item["sk"]["S"] == "POINTER")
    assert pointers == [
        "TAG#111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop/api:latest",
        "TAG#444455556666.dkr.ecr.eu-west-1.amazonaws.com/shop/api:latest",
    ]


def test_missing_configuration_fails_the_cold_start_naming_the_variable(stack: Stack) -> None:
    from tagwarden.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="LEDGER_TABLE_NAME"):
        load_function_module("push_guard", {"ALERTS_TOPIC_ARN": stack.topic_arn, "LEDGER_TABLE_NAME": ""})


def test_the_quiet_push_path_makes_two_ledger_requests(stack: Stack) -> None:
    from tests.support.handlers import FakeLambdaContext
    from tests.support.requests import RequestLog, dynamodb_operations

    requests = RequestLog()
    requests.attach()  # before the handler's clients exist: they copy the session's handlers
    module = load_function_module("push_guard", stack.environment())
    events = [
        ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:00:00Z"),  # first push of a tag
        ecr_image_action(tag="latest", digest=A, time="2026-11-20T10:05:00Z"),  # same digest again
    ]
    for event in events:
        with requests.record() as calls:
            assert module.lambda_handler(event, FakeLambdaContext())["outcome"] == "recorded"
        # One consistent read of pointer, entry and digest record; one transaction writing all three.
        assert dynamodb_operations(calls) == {"BatchGetItem": 1, "TransactWriteItems": 1}
