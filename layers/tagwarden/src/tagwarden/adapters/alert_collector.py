"""An alert publisher that publishes nothing: it keeps the alerts so the command can show them."""

from __future__ import annotations

from tagwarden.domain.alerts import Alert


class AlertCollector:
    """Keeps what a withheld run would have published (see `AlertDelivery`'s withhold mode)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Keep the alert, once: an undelivered finding observed again in the same run is offered again.
        (No sinks: `skip` is a fan-out's.)"""
        if all(kept.alert_id != alert.alert_id for kept in self.alerts):
            self.alerts.append(alert)
