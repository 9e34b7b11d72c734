"""Every place an alert goes, behind the one `AlertPublisher` port: the alerts topic, and optionally the chat
topic and Security Hub.

An alert counts as published (the outbox records its id) only when every sink has it, so a retry after a
partial failure publishes it to every sink again. That is safe by design: the alerts topic's subscribers
deduplicate on `alert_id` (the schema's promise), the chat topic threads a repeated alert under its first post
(`threadId` is the alert id), and Security Hub updates the finding with the same Id. A sink that refuses an
alert for good (`AlertRejectedError`: Security Hub not enabled, no permission) does not hold the alert back
from the others forever: it is logged and counted (`AlertSinkRejections`, alarmed) and the alert goes on.

The sinks are called at the same time, each on its own client bounded by `aws_clients.publish_config`: one
alert's publish to all of them ends within the slowest sink's bound, which stays within the delivery lease
(`services.alert_delivery.ALERT_LEASE`); called one after another, three bounds would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from tagwarden.domain.alerts import Alert
from tagwarden.observability import logger, metrics
from tagwarden.ports import AlertDeliveryError, AlertPublisher, AlertRejectedError

PRIMARY_SINK = "alerts-topic"


class FanOutAlertPublisher:
    """Publishes each alert to the alerts topic and to every configured optional sink, concurrently."""

    def __init__(self, primary: AlertPublisher, optional: Mapping[str, AlertPublisher]) -> None:
        self._sinks: dict[str, AlertPublisher] = {PRIMARY_SINK: primary, **optional}

    @property
    def sinks(self) -> tuple[str, ...]:
        """The sinks' names, the alerts topic first."""
        return tuple(self._sinks)

    def publish(self, alert: Alert) -> None:
        """Publish to every sink; raise AlertDeliveryError (after all have finished) if any did not take it."""
        primary, *optional = self._sinks.items()
        if not optional:
            primary[1].publish(alert)
            return
        # The alerts topic on the invocation's own thread (its X-Ray trace context and the Lambda context stay
        # as they are), the optional sinks on worker threads at the same time.
        outcomes: dict[str, BaseException | None] = {}
        with ThreadPoolExecutor(max_workers=len(optional), thread_name_prefix="alert-sink") as pool:
            futures: dict[str, Future[None]] = {name: pool.submit(sink.publish, alert) for name, sink in optional}
            try:
                primary[1].publish(alert)
                outcomes[primary[0]] = None
            except Exception as primary_error:  # collected with the others' below, once every sink has finished
                outcomes[primary[0]] = primary_error
        # The pool has joined: every sink has finished, successfully or not. Metrics and logs from here, on
        # the invocation's own thread (Powertools' metric buffer is not shared with worker threads).
        outcomes.update({name: future.exception() for name, future in futures.items()})
        failures: list[tuple[str, BaseException]] = []
        for name, error in outcomes.items():
            if error is None:
                continue
            if isinstance(error, AlertRejectedError) and name != PRIMARY_SINK:
                metrics.add_metric(name="AlertSinkRejections", unit="Count", value=1)
                logger.error(
                    "alert sink refused the alert",
                    extra={"sink": name, "alert_id": alert.alert_id, "error": str(error)},
                )
                continue
            failures.append((name, error))
        if not failures:
            return
        for _, error in failures:
            if not isinstance(error, AlertDeliveryError):
                raise error  # a bug, not an outage: surface it as it is
        metrics.add_metric(name="AlertSinkFailures", unit="Count", value=len(failures))
        summary = "; ".join(f"{name}: {error}" for name, error in failures)
        raise AlertDeliveryError(f"alert {alert.alert_id} did not reach every sink ({summary})") from failures[0][1]
