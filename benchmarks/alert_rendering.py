"""What reading-friendly alerts cost: rendering time and message sizes per alert type, and the fan-out's overhead.

Per alert type (tests/support/alerts.py samples): the SNS structured message (schema v1 JSON + e-mail text),
the chat notification and the ASFF finding, each rendered and serialised as the publishers do; medians of
repeated runs in microseconds, sizes in bytes. The fan-out figure is the time `FanOutAlertPublisher` adds
around three sinks that do nothing (threads started and joined per alert), against calling one sink.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "layers" / "tagwarden" / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tagwarden.adapters.alert_sinks import FanOutAlertPublisher  # noqa: E402
from tagwarden.adapters.chat_publisher import chat_notification  # noqa: E402
from tagwarden.adapters.securityhub_publisher import asff_finding  # noqa: E402
from tagwarden.adapters.sns_publisher import structured_message  # noqa: E402
from tagwarden.domain.alerts import Alert  # noqa: E402

from benchmarks.report import Cell, table  # noqa: E402
from tests.support.alerts import sample_alerts  # noqa: E402

PRODUCT_ARN = "arn:aws:securityhub:eu-west-1:444455556666:product/444455556666/default"
RUNS = 300


@dataclass(frozen=True)
class Rendering:
    alert_type: str
    sns_us: float
    sns_bytes: int
    chat_us: float
    chat_bytes: int
    asff_us: float
    asff_bytes: int


def _chat_json(alert: Alert) -> str:
    return json.dumps(chat_notification(alert), ensure_ascii=False)


def _asff_json(alert: Alert) -> str:
    return json.dumps(asff_finding(alert, PRODUCT_ARN))


def _median_us(work: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def measure() -> tuple[list[Rendering], float, float]:
    """Renderings per type, then the median µs of one sink called directly and of three fanned out."""
    renderings = []
    for alert_type, alert in sample_alerts().items():
        sns = functools.partial(structured_message, alert)
        chat = functools.partial(_chat_json, alert)
        asff = functools.partial(_asff_json, alert)
        renderings.append(
            Rendering(
                alert_type.value,
                _median_us(sns),
                len(sns().encode()),
                _median_us(chat),
                len(chat().encode()),
                _median_us(asff),
                len(asff().encode()),
            )
        )

    class Nothing:
        def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
            return None

    alert = next(iter(sample_alerts().values()))
    direct = _median_us(lambda: Nothing().publish(alert))
    fanned = FanOutAlertPublisher(Nothing(), {"chat-topic": Nothing(), "security-hub": Nothing()})
    return renderings, direct, _median_us(lambda: fanned.publish(alert))


def render(measured: tuple[list[Rendering], float, float]) -> str:
    renderings, direct, fanned = measured
    rows: list[list[Cell]] = [
        [
            r.alert_type,
            f"{r.sns_us:.0f}",
            r.sns_bytes,
            f"{r.chat_us:.0f}",
            r.chat_bytes,
            f"{r.asff_us:.0f}",
            r.asff_bytes,
        ]
        for r in renderings
    ]
    headers = ["alert type", "SNS µs", "SNS bytes", "chat µs", "chat bytes", "ASFF µs", "ASFF bytes"]
    return (
        table(headers, rows)
        + f"\n\nFan-out to 3 sinks that do nothing: {fanned:.0f} µs per alert"
        + f" (one sink called directly: {direct:.1f} µs);"
        + "\nthe sinks' own requests (tens of ms each) run at the same time."
    )


if __name__ == "__main__":
    print(render(measure()))
