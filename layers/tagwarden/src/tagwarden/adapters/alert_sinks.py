"""Every place an alert goes, behind the one `AlertPublisher` port: the alerts topic, and optionally the chat
topic and Security Hub.

An alert counts as published (the outbox records its id) only when every sink has it. When one sink fails,
the error names the sinks that took the alert (`AlertDeliveryError.reached`); the outbox records them
(`<alert id>#<sink>`) and the retry publishes only to the sinks that failed: a chat topic that is down does
not page the alerts topic's subscribers again on every retry. Should that record itself fail, a retry
publishes to every sink again, which stays safe: the alerts topic's subscribers deduplicate on `alert_id`
(the schema's promise), the chat topic threads a repeated alert under its first post (`threadId` is the alert
id), and Security Hub updates the finding with the same Id. A sink that refuses an alert for good
(`AlertRejectedError`: Security Hub not enabled, the chat topic's key disabled, no permission) does not hold
the alert back from the others: it is logged and counted (`AlertSinkRejections`, alarmed) and the alert goes
on.

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

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Publish to every sink not in `skip`; raise AlertDeliveryError (after all have finished, naming the
        sinks that took the alert) if any did not take it."""
        pending = [(name, sink) for name, sink in self._sinks.items() if name not in skip]
        if not pending:
            return
        own_thread, *others = pending
        # The first sink (the alerts topic, unless it has the alert already) on the invocation's own thread (its
        # X-Ray trace context and the Lambda context stay as they are), the others on worker threads at once.
        outcomes: dict[str, BaseException | None] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(others)), thread_name_prefix="alert-sink") as pool:
            futures: dict[str, Future[None]] = {name: pool.submit(sink.publish, alert) for name, sink in others}
            try:
                own_thread[1].publish(alert)
                outcomes[own_thread[0]] = None
            except Exception as first_error:  # collected with the others' below, once every sink has finished
                outcomes[own_thread[0]] = first_error
        # The pool has joined: every sink has finished, successfully or not. Metrics and logs from here, on
        # the invocation's own thread (Powertools' metric buffer is not shared with worker threads).
        outcomes.update({name: future.exception() for name, future in futures.items()})
        failures: list[tuple[str, BaseException]] = []
        reached = set(skip)
        for name, error in outcomes.items():
            if error is None:
                reached.add(name)
                continue
            if isinstance(error, AlertRejectedError) and name != PRIMARY_SINK:
                metrics.add_metric(name="AlertSinkRejections", unit="Count", value=1)
                logger.error(
                    "alert sink refused the alert",
                    extra={"sink": name, "alert_id": alert.alert_id, "error": str(error)},
                )
                # Refused for good: a retry would be refused again, so it counts as done for this sink.
                reached.add(name)
                continue
            failures.append((name, error))
        if not failures:
            return
        for _, error in failures:
            if not isinstance(error, AlertDeliveryError):
                raise error  # a bug, not an outage: surface it as it is
        metrics.add_metric(name="AlertSinkFailures", unit="Count", value=len(failures))
        summary = "; ".join(f"{name}: {error}" for name, error in failures)
        raise AlertDeliveryError(
            f"alert {alert.alert_id} did not reach every sink ({summary})", reached=frozenset(reached)
        ) from failures[0][1]
