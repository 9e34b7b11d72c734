"""The fan-out to the alert sinks: concurrent, done only when every sink is, a sink's refusal counted not retried."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from tagwarden.adapters.alert_sinks import FanOutAlertPublisher
from tagwarden.domain.alerts import Alert, AlertType
from tagwarden.ports import AlertDeliveryError, AlertRejectedError

from tests.support.alerts import sample_alerts

ALERT = sample_alerts()[AlertType.TAG_OVERWRITTEN]


class Sink:
    def __init__(self, error: Exception | None = None, barrier: threading.Barrier | None = None) -> None:
        self.error = error
        self.barrier = barrier
        self.published: list[str] = []

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        if self.barrier is not None:
            # Every sink must be inside publish at once for this to return: proof they run concurrently.
            self.barrier.wait(timeout=5)
        if self.error is not None:
            raise self.error
        self.published.append(alert.alert_id)


def test_the_sinks_are_called_at_the_same_time() -> None:
    barrier = threading.Barrier(3)
    sinks = [Sink(barrier=barrier) for _ in range(3)]

    FanOutAlertPublisher(sinks[0], {"chat-topic": sinks[1], "security-hub": sinks[2]}).publish(ALERT)

    assert [sink.published for sink in sinks] == [[ALERT.alert_id]] * 3


def test_a_failed_sink_fails_the_publish_after_the_others_have_it() -> None:
    topic, chat, hub = Sink(), Sink(AlertDeliveryError("chat topic throttled")), Sink()

    with pytest.raises(AlertDeliveryError, match="chat-topic: chat topic throttled") as raised:
        FanOutAlertPublisher(topic, {"chat-topic": chat, "security-hub": hub}).publish(ALERT)

    assert topic.published == hub.published == [ALERT.alert_id]
    # The error names the sinks that have it, so the retry can skip them.
    assert raised.value.reached == {"alerts-topic", "security-hub"}


def test_a_retry_publishes_only_to_the_sinks_that_do_not_have_the_alert() -> None:
    topic, chat, hub = Sink(), Sink(), Sink()

    FanOutAlertPublisher(topic, {"chat-topic": chat, "security-hub": hub}).publish(
        ALERT, skip=frozenset({"alerts-topic", "security-hub"})
    )

    assert (topic.published, chat.published, hub.published) == ([], [ALERT.alert_id], [])


def test_a_retry_that_fails_again_still_names_the_sinks_that_had_it_before() -> None:
    topic, chat = Sink(), Sink(AlertDeliveryError("still throttled"))

    with pytest.raises(AlertDeliveryError) as raised:
        FanOutAlertPublisher(topic, {"chat-topic": chat}).publish(ALERT, skip=frozenset({"alerts-topic"}))

    assert topic.published == [] and raised.value.reached == {"alerts-topic"}


def test_an_optional_sink_that_refuses_for_good_does_not_hold_the_alert_back() -> None:
    topic, hub = Sink(), Sink(AlertRejectedError("Security Hub is not enabled in eu-west-1"))

    FanOutAlertPublisher(topic, {"security-hub": hub}).publish(ALERT)

    assert topic.published == [ALERT.alert_id]


def test_a_refusal_beside_a_failure_counts_as_done_for_the_refusing_sink() -> None:
    topic, chat, hub = Sink(), Sink(AlertDeliveryError("throttled")), Sink(AlertRejectedError("not enabled"))

    with pytest.raises(AlertDeliveryError) as raised:
        FanOutAlertPublisher(topic, {"chat-topic": chat, "security-hub": hub}).publish(ALERT)

    assert raised.value.reached == {"alerts-topic", "security-hub"}


def test_the_alerts_topic_failing_always_fails_the_publish() -> None:
    with pytest.raises(AlertDeliveryError, match="alerts-topic"):
        FanOutAlertPublisher(Sink(AlertRejectedError("no")), {"chat-topic": Sink()}).publish(ALERT)


def test_a_bug_in_a_sink_surfaces_as_itself() -> None:
    with pytest.raises(KeyError):
        FanOutAlertPublisher(Sink(), {"security-hub": Sink(KeyError("Resources"))}).publish(ALERT)


class Unparsable:
    """A client whose response botocore could not parse (a proxy's HTML page): `ResponseParserError`."""

    def publish(self, **request: object) -> None:
        from botocore.parsers import ResponseParserError

        raise ResponseParserError("Unable to parse response, invalid XML received")

    batch_import_findings = publish


def test_an_unparsable_response_is_a_delivery_failure_in_every_publisher() -> None:
    from tagwarden.adapters.chat_publisher import ChatAlertPublisher
    from tagwarden.adapters.securityhub_publisher import SecurityHubAlertPublisher
    from tagwarden.adapters.sns_publisher import SnsAlertPublisher

    client: Any = Unparsable()
    topic = "arn:aws:sns:eu-west-1:111122223333:t"
    product = "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
    for publisher in (
        SnsAlertPublisher(client, topic),
        ChatAlertPublisher(client, topic),
        SecurityHubAlertPublisher(client, product),
    ):
        with pytest.raises(AlertDeliveryError, match="parse") as raised:
            publisher.publish(ALERT)
        assert not isinstance(raised.value, AlertRejectedError)  # worth a retry


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("KMSDisabled", True),
        ("KMSAccessDenied", True),
        ("AuthorizationError", True),
        ("NotFound", True),
        ("InvalidParameter", True),
        ("Throttling", False),
        ("InternalError", False),
    ],
)
def test_the_chat_publisher_refuses_for_good_only_on_permanent_sns_errors(code: str, refused: bool) -> None:
    import boto3
    from botocore.stub import Stubber
    from tagwarden.adapters.chat_publisher import ChatAlertPublisher

    client = boto3.client("sns", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("publish", service_error_code=code, http_status_code=400)
        with pytest.raises(AlertDeliveryError) as raised:
            ChatAlertPublisher(client, "arn:aws:sns:eu-west-1:111122223333:chat").publish(ALERT)
    assert isinstance(raised.value, AlertRejectedError) is refused
