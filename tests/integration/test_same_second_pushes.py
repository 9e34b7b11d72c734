"""Two actions on one tag in the same second, through the real push guard, with ECR (moto) as the witness.

ECR event times have one-second resolution and EventBridge ids are random, so the ledger's order of two
same-second events is a coin toss; where ECR says the tag points now decides which one was applied last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from tagwarden.domain.alerts import AlertType

from tests.support.events import ecr_image_action
from tests.support.handlers import Handler
from tests.support.same_second import HIGH_ID, LOW_ID, REGISTRY, ledger_pointer, put
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

SECOND = "2026-11-20T10:00:07Z"


@pytest.fixture
def ecr(stack: Stack) -> ECRClient:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


def history(stack: Stack, tag: str) -> list[tuple[str, str, str | None]]:
    pk = f"TAG#{REGISTRY}/shop/api:{tag}"
    moves = sorted((i["sk"]["S"], i) for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"].startswith("MOVE#"))
    return [
        (i["action"]["S"], i["digest"]["S"], i["previous_digest"]["S"] if "previous_digest" in i else None)
        for _, i in moves
    ]


@pytest.mark.parametrize(
    ("first_id", "last_id", "delivered_in_order"),
    [
        (HIGH_ID, LOW_ID, True),  # the last push sorts first by id, and arrives last
        (HIGH_ID, LOW_ID, False),  # ... and arrives first
        (LOW_ID, HIGH_ID, False),  # ids agree with the truth, deliveries do not
    ],
)
def test_two_pushes_in_one_second_leave_the_tag_where_ecr_has_it(
    stack: Stack, ecr: ECRClient, push_guard: Handler, first_id: str, last_id: str, delivered_in_order: bool
) -> None:
    older = put(ecr, "build 1", "main")
    newer = put(ecr, "build 2", "main")  # ECR applied this one last: the tag names it
    events = [
        ecr_image_action(tag="main", digest=older, time=SECOND, event_id=first_id),
        ecr_image_action(tag="main", digest=newer, time=SECOND, event_id=last_id),
    ]
    for event in events if delivered_in_order else reversed(events):
        push_guard(event)

    assert ledger_pointer(stack, "main") == newer
    assert history(stack, "main") == [("PUSH", older, None), ("PUSH", newer, older)]
    (received,) = stack.received_alerts()  # the move is alerted once, whichever order
    assert (received.alert.previous_digest, received.alert.current_digest) == (older, newer)
    # A redelivery of either event is recognised, wherever the tie placed it.
    for event in events:
        assert push_guard(event)["outcome"] == "duplicate"
    assert stack.received_alerts() == []


def test_delete_and_push_in_one_second_leave_the_tag_pushed(stack: Stack, ecr: ECRClient, push_guard: Handler) -> None:
    """The immutability workaround done fast: delete the tag and push new content within a second."""
    old = put(ecr, "release", "v2.0.0")
    push_guard(ecr_image_action(tag="v2.0.0", digest=old, time="2026-11-20T09:00:00Z"))
    ecr.batch_delete_image(repositoryName="shop/api", imageIds=[{"imageTag": "v2.0.0"}])
    new = put(ecr, "impostor", "v2.0.0")
    push_guard(ecr_image_action(tag="v2.0.0", digest=new, time=SECOND, event_id=LOW_ID))
    push_guard(ecr_image_action(tag="v2.0.0", digest=old, time=SECOND, event_id=HIGH_ID, action="DELETE"))

    assert ledger_pointer(stack, "v2.0.0") == new
    assert [r.alert.type for r in stack.received_alerts()] == [AlertType.TAG_OVERWRITTEN]


def test_a_tie_the_registry_cannot_settle_keeps_the_event_order(
    stack: Stack, ecr: ECRClient, push_guard: Handler
) -> None:
    """ECR's tag has moved on again since (a third push whose event is still on its way)."""
    first = put(ecr, "build 1", "main")
    second = put(ecr, "build 2", "main")
    put(ecr, "build 3", "main")
    push_guard(ecr_image_action(tag="main", digest=second, time=SECOND, event_id=LOW_ID))
    push_guard(ecr_image_action(tag="main", digest=first, time=SECOND, event_id=HIGH_ID))

    assert ledger_pointer(stack, "main") == first  # the higher id sorts last: the documented fallback


def test_only_a_same_second_tie_asks_ecr(stack: Stack, ecr: ECRClient) -> None:
    from tests.conftest import cold_start
    from tests.support.handlers import FakeLambdaContext

    ecr_calls: list[str] = []
    # The handler's ECR client is created when its module is imported and copies the session's handlers.
    boto3._get_default_session().events.register("before-call.ecr", lambda model, **_: ecr_calls.append(model.name))
    push_guard = cold_start("push_guard", stack.environment(), FakeLambdaContext())
    a, b = put(ecr, "build 1", "main"), put(ecr, "build 2", "main")
    push_guard(ecr_image_action(tag="main", digest=a, time="2026-11-20T10:00:06Z"))
    push_guard(ecr_image_action(tag="main", digest=a, time="2026-11-20T10:00:06Z"))  # same second, same digest
    push_guard(ecr_image_action(tag="main", digest=b, time=SECOND))
    assert ecr_calls == []
    push_guard(ecr_image_action(tag="main", digest=a, time=SECOND, event_id=HIGH_ID))
    assert ecr_calls == ["BatchGetImage"]
    assert ledger_pointer(stack, "main") == b
