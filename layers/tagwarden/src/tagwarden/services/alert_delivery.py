"""Publishing the alerts a ledger entry raised: after the write, exactly once per entry, never lost.

The alerts are stored on the entry in the same atomic write as the ledger change (an outbox), leased to
the writer until `lease_until()`. The writer publishes them and flags the entry delivered; a duplicate
delivery of the same event finds the alerts either delivered (nothing to do), leased (someone is
publishing; if that fails, its own retry publishes) or undelivered with the lease expired (it takes over).

Two modes. `PUBLISH`: alerts go to the publisher (the alerts topic) and the entry is flagged delivered.
`WITHHOLD` (the command's runs without a topic, or with `--no-publish`): alerts go to the publisher
(a collector that shows them as "would alert"), but nothing reached security staff, so the entry stays
undelivered and its lease is given up at once; a later run with a topic that meets the same entry
(the same backfill or replay again, or the same finding observed again) takes the delivery over and
publishes them, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tagwarden.clock import utcnow
from tagwarden.domain.alerts import Alert
from tagwarden.observability import logger, metrics
from tagwarden.ports import (
    AlertDeliveryError,
    AlertEntry,
    AlertOutbox,
    AlertPublisher,
    LedgerUnavailableError,
    RecordedAlerts,
)

# Longer than publishing takes, shorter than Lambda's first async retry (about a minute), so the retry of a
# crashed invocation always finds the lease expired.
ALERT_LEASE = timedelta(seconds=30)


def sink_progress(alert_id: str, sink: str) -> str:
    """How the outbox's published set says one sink has an alert that not every sink has."""
    return f"{alert_id}#{sink}"


def sinks_reached(alert_id: str, published: frozenset[str]) -> frozenset[str]:
    """The sinks an earlier attempt got the alert to, from the outbox's published set."""
    prefix = sink_progress(alert_id, "")
    return frozenset(item[len(prefix) :] for item in published if item.startswith(prefix))


class DeliveryMode(StrEnum):
    """Whether delivered alerts count as delivered (see the module docstring)."""

    PUBLISH = "publish"
    WITHHOLD = "withhold"


class AlertDelivery:
    """The one owner of an alert's way out: lease, publish, partial progress, delivered flag."""

    def __init__(
        self,
        outbox: AlertOutbox,
        publisher: AlertPublisher,
        mode: DeliveryMode = DeliveryMode.PUBLISH,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._mode = mode
        self._clock = clock

    def lease_until(self) -> datetime:
        """Until when a writer that records alerts now holds their delivery (written with the entry)."""
        return self._clock() + ALERT_LEASE

    def handed_over(self) -> datetime:
        """The lease of alerts recorded for another component to publish (the tag reverter publishes an
        overwrite's alerts with the revert's outcome): expired from the start, so that component's `claim`
        takes the delivery at once."""
        return datetime(1970, 1, 1, tzinfo=UTC)

    def deliver(
        self, entry: AlertEntry, alerts: tuple[Alert, ...], published: frozenset[str] = frozenset()
    ) -> tuple[str, ...]:
        """Publish every alert of an entry not published yet, then flag it delivered (or, withheld, release it).

        On failure, remember which alerts were accepted, and which sinks took the alert that failed (so the
        retry skips them: a chat topic refusing must not page the alerts topic's subscribers again on every
        retry), release the lease, raise.
        """
        if not alerts:
            return ()
        accepted: list[str] = []
        alert = alerts[0]
        try:
            for alert in alerts:
                if alert.alert_id in published:
                    continue
                self._publisher.publish(alert, skip=sinks_reached(alert.alert_id, published))
                accepted.append(alert.alert_id)
                self._log_published(alert)
        except Exception as error:
            progress = [*accepted]
            if isinstance(error, AlertDeliveryError):
                progress += [sink_progress(alert.alert_id, sink) for sink in sorted(error.reached)]
            if progress and self._mode is DeliveryMode.PUBLISH:
                with contextlib.suppress(LedgerUnavailableError):
                    self._outbox.mark_published(entry, progress)
            self._outbox.release(entry)
            raise
        if self._mode is DeliveryMode.WITHHOLD:
            self._outbox.release(entry)
            return tuple(accepted)
        try:
            self._outbox.mark_delivered(entry)
        except LedgerUnavailableError:
            # The alerts are out; failing the invocation now would only make its retry publish them again.
            # Remember at least which went out (a duplicate then skips them); the lease keeps duplicates
            # quiet meanwhile, and the metric tells operations the flag is missing.
            with contextlib.suppress(LedgerUnavailableError):
                self._outbox.mark_published(entry, [*published, *accepted])
            metrics.add_metric(name="AlertDeliveryNotRecorded", unit="Count", value=1)
            logger.exception("alerts published but not marked delivered", extra={"entry": str(entry)})
        return tuple(accepted)

    def redeliver(self, entry: AlertEntry, recorded: RecordedAlerts) -> tuple[str, ...]:
        """For a duplicate delivery: finish publishing if an earlier attempt could not."""
        if not recorded.alerts or recorded.delivered:
            return ()
        now = self._clock()
        if not self._outbox.claim(entry, now, now + ALERT_LEASE):
            logger.info("alert delivery in progress elsewhere")
            return ()
        return self.deliver(entry, recorded.alerts, recorded.published)

    def _log_published(self, alert: Alert) -> None:
        if self._mode is DeliveryMode.WITHHOLD:
            return
        metrics.add_metric(name="AlertsPublished", unit="Count", value=1)
        logger.warning(
            "alert published",
            extra={"alert_id": alert.alert_id, "alert_type": alert.type, "severity": alert.severity},
        )
