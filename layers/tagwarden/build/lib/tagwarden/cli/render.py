"""What the commands print: rich tables for people, JSON for machines (`--json`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from tagwarden.domain.scans import ScanState, ScanStatus, Verdict

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tagwarden.domain.alerts import Alert
    from tagwarden.domain.tags import TagRef
    from tagwarden.services.backfill import BackfillReport
    from tagwarden.services.ledger_queries import HistoryEntry, ImageCheck

# Wide enough for full event ids when the output is a file or a pipe (rich assumes 80 columns there).
PIPE_WIDTH = 200


def emit_json(data: object) -> None:
    """Machine output: one JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2))


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr), created per use so it writes where the streams are now."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def iso(moment: datetime) -> str:
    """UTC time as JSON carries it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def short(digest: str | None) -> str:
    """A digest shortened for a table: algorithm and the first 12 characters."""
    if digest is None:
        return "-"
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:12]}"


def scan_json(scan: ScanState | None) -> dict[str, object] | None:
    """A scan state as JSON."""
    if scan is None:
        return None
    return {
        "status": scan.status.value,
        "verdict": scan.verdict.value if scan.verdict is not None else None,
        "scanner": scan.scanner,
        "scanned_at": iso(scan.scanned_at),
        "finding_counts": dict(scan.finding_counts),
    }


def history_json(entries: Sequence[HistoryEntry]) -> list[dict[str, object]]:
    """A tag's timeline as JSON, oldest first."""
    return [
        {
            "time": iso(entry.move.source.event_time),
            "action": entry.move.action.value,
            "digest": entry.move.digest,
            "previous_digest": entry.move.previous_digest,
            "event_id": entry.move.source.event_id,
            "late": entry.move.late,
            "scan": scan_json(entry.scan),
            "alerts": [alert.alert_id for alert in entry.move.alerts],
        }
        for entry in entries
    ]


def history_table(tag: TagRef, entries: Sequence[HistoryEntry]) -> Table:
    """A tag's timeline as a table, oldest first."""
    from rich.table import Table

    table = Table(title=f"{tag}", title_justify="left")
    for column in ("Time (UTC)", "Action", "Digest", "Previous", "Event", "Late", "Scan", "Verdict"):
        table.add_column(column, no_wrap=True)
    for entry in entries:
        move, scan = entry.move, entry.scan
        table.add_row(
            f"{move.source.event_time.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            move.action.value,
            short(move.digest),
            short(move.previous_digest),
            move.source.event_id,
            "late" if move.late else "",
            _scan_cell(scan),
            _verdict_cell(scan),
        )
    return table


def _scan_cell(scan: ScanState | None) -> str:
    if scan is None:
        return "[yellow]unscanned[/yellow]"
    colour = "red" if scan.status is ScanStatus.FAILED else "green"
    return f"[{colour}]{scan.status.value}[/{colour}] {scan.scanner}"


def _verdict_cell(scan: ScanState | None) -> str:
    if scan is None or scan.verdict is None:
        return "-"
    if scan.verdict is Verdict.PASS:
        return "[green]pass[/green]"
    counts = ", ".join(f"{name} {count}" for name, count in sorted(scan.finding_counts.items()))
    return f"[red]fail[/red] ({counts})" if counts else "[red]fail[/red]"


def check_json(check: ImageCheck) -> dict[str, object]:
    """The answer of `check` and `pin` as JSON."""
    return {
        "reference": str(check.reference),
        "passed": check.passed,
        "refusal": check.refusal.value if check.refusal is not None else None,
        "reason": check.reason,
        "digest": check.digest,
        "pinned": check.pinned,
        "scan": scan_json(check.scan),
    }


def alert_json(alert: Alert) -> dict[str, object]:
    """An alert as the command lists it (the full schema v1 body is what the topic receives)."""
    return {
        "alert_id": alert.alert_id,
        "type": alert.type.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
    }


def backfill_json(report: BackfillReport, published: bool, withheld: Sequence[Alert]) -> dict[str, object]:
    """A backfill's totals as JSON."""
    return {
        "repositories": report.repositories,
        "images": report.images,
        "tags": dict(report.tags),
        "untagged": dict(report.untagged),
        "scans": dict(report.scans),
        "alerts": {
            "published": list(report.alerts) if published else [],
            "would_alert": [alert_json(alert) for alert in withheld],
        },
    }


def counts_line(counts: dict[str, int]) -> str:
    """`3 recorded, 1 duplicate` in the order of `Seeding` (or `none`)."""
    from tagwarden.services.backfill import Seeding

    order = [seeding.value for seeding in Seeding]
    ranked = sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    return ", ".join(f"{count} {name}" for name, count in ranked) or "none"
