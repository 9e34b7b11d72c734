"""Publishing the alerts a ledger entry raised: after the write, exactly once per entry, never lost.

The alerts are stored on the entry in the same atomic write as the ledger change (an outbox). The writer
holds a short lease while it publishes; a duplicate delivery of the same event finds the alerts either
delivered (nothing to do), leased (someone is publishing; if that fails, its own retry publishes) or
undelivered with the lease expired (it takes over).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tagwarden.domain.alerts import Alert
from tagwarden.observability import logger, metrics
from tagwarden.ports import AlertEntry, AlertOutbox, AlertPublisher, LedgerUnavailableError, RecordedAlerts

# Longer than publishing takes, shorter than Lambda's first async retry (about a minute), so the retry of a
# crashed invocation always finds the lease expired.
ALERT_LEASE = timedelta(seconds=30)


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class AlertDelivery:
    """Publishes an entry's alerts and records that it did."""

    def __init__(self, outbox: AlertOutbox, publisher: AlertPublisher, clock: Callable[[], datetime] = utcnow) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock

    def lease_until(self) -> datetime:
        """Until when a writer that records alerts now holds their delivery."""
        return self._clock() + ALERT_LEASE

    def deliver(
        self, entry: AlertEntry, alerts: tuple[Alert, ...], published: frozenset[str] = frozenset()
    ) -> tuple[str, ...]:
        """Publish every alert of an entry not published yet, then flag it delivered.

        On failure, remember which alerts SNS did accept (so the retry skips them), release the lease, raise.
        """
        if not alerts:
            return ()
        accepted: list[str] = []
        try:
            for alert in alerts:
                if alert.alert_id in published:
                    continue
                self._publisher.publish(alert)
                accepted.append(alert.alert_id)
                metrics.add_metric(name="AlertsPublished", unit="Count", value=1)
                logger.warning(
                    "alert published",
                    extra={"alert_id": alert.alert_id, "alert_type": alert.type, "severity": alert.severity},
                )
        except Exception:
            if accepted:
                with contextlib.suppress(LedgerUnavailableError):
                    self._outbox.mark_alerts_published(entry, accepted)
            self._outbox.release_alert_delivery(entry)
            raise
        try:
            self._outbox.mark_alerts_delivered(entry)
        except LedgerUnavailableError:
            # The alerts are out; failing the invocation now would only make its retry publish them again.
            # The lease keeps duplicates quiet meanwhile; the metric tells operations the flag is missing.
            metrics.add_metric(name="AlertDeliveryNotRecorded", unit="Count", value=1)
            logger.exception("alerts published but not marked delivered", extra={"entry": str(entry)})
        return tuple(accepted)

    def redeliver(self, entry: AlertEntry, recorded: RecordedAlerts) -> tuple[str, ...]:
        """For a duplicate delivery: finish publishing if an earlier attempt could not."""
        if not recorded.alerts or recorded.delivered:
            return ()
        now = self._clock()
        if not self._outbox.claim_alert_delivery(entry, now, now + ALERT_LEASE):
            logger.info("alert delivery in progress elsewhere")
            return ()
        return self.deliver(entry, recorded.alerts, recorded.published)
