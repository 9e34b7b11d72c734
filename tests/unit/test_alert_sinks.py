"""The fan-out to the alert sinks: concurrent, done only when every sink is, a sink's refusal counted not retried."""

from __future__ import annotations

import threading

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

    def publish(self, alert: Alert) -> None:
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

    with pytest.raises(AlertDeliveryError, match="chat-topic: chat topic throttled"):
        FanOutAlertPublisher(topic, {"chat-topic": chat, "security-hub": hub}).publish(ALERT)

    assert topic.published == hub.published == [ALERT.alert_id]


def test_an_optional_sink_that_refuses_for_good_does_not_hold_the_alert_back() -> None:
    topic, hub = Sink(), Sink(AlertRejectedError("Security Hub is not enabled in eu-west-1"))

    FanOutAlertPublisher(topic, {"security-hub": hub}).publish(ALERT)

    assert topic.published == [ALERT.alert_id]


def test_the_alerts_topic_failing_always_fails_the_publish() -> None:
    with pytest.raises(AlertDeliveryError, match="alerts-topic"):
        FanOutAlertPublisher(Sink(AlertRejectedError("no")), {"chat-topic": Sink()}).publish(ALERT)


def test_a_bug_in_a_sink_surfaces_as_itself() -> None:
    with pytest.raises(KeyError):
        FanOutAlertPublisher(Sink(), {"security-hub": Sink(KeyError("Resources"))}).publish(ALERT)
