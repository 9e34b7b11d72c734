"""What the commands print: rich tables for people, JSON for machines (`--json`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING

import typer

from tagwarden.clock import iso
from tagwarden.domain.identity import actor_label
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict, severity_counts

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tagwarden.domain.alerts import Alert
    from tagwarden.domain.tags import TagMove, TagRef
    from tagwarden.services.backfill import BackfillReport
    from tagwarden.services.ledger_queries import HistoryEntry, ImageCheck

# Wide enough for every history column on one line when the output is a file or a pipe (rich assumes 80).
PIPE_WIDTH = 200


def emit_json(data: object) -> None:
    """Machine output: one JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2))


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr), created per use so it writes where the streams are now.

    Piped, it is `PIPE_WIDTH` wide unless COLUMNS says otherwise (`COLUMNS=80 tagwarden history ... | less`).
    """
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def short(digest: str | None) -> str:
    """A digest shortened for a table: its first 12 hex digits, as `docker images` shows image ids."""
    if digest is None:
        return "-"
    return digest.partition(":")[2][:12] or digest


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
            "index": _index_json(entry),
            "revert": _revert_role(entry.move),
            # Who made the call (CloudTrail), or null while not yet known.
            "actor": entry.move.actor.model_dump(mode="json") if entry.move.actor is not None else None,
        }
        for entry in entries
    ]


def _index_json(entry: HistoryEntry) -> dict[str, object] | None:
    """For an entry naming an image index: its platform manifests with each one's scan, and its attestations."""
    if entry.index is None:
        return None
    children = entry.index.children
    return {
        "platforms": [
            {"platform": c.platform, "digest": c.digest, "scan": scan_json(entry.platform_scans.get(c.digest))}
            for c in children
            if not c.attestation
        ],
        "attestations": [c.digest for c in children if c.attestation],
    }


def history_table(tag: TagRef, entries: Sequence[HistoryEntry]) -> Table:
    """A tag's timeline as a table, oldest first, readable from 80 columns up.

    Each entry takes two lines: date over time, digest over the previous one, scan status over the scanner,
    so that the fixed columns stay narrow and the event id and verdict get the rest of the width; down to 80
    columns they wrap (an event id is folded over lines), and no value is ever cut. Digests are shown by
    their first 12 hex digits; `--json` has them in full.
    """
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{tag}", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)
    )
    table.add_column("Time (UTC)", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("Digest\n← previous", no_wrap=True)
    # The event id and the verdict share what is left and wrap (an event id has no spaces: it is folded).
    # No `min_width`: rich 15 renders a cell at its minimum width, then crops it to a narrower column.
    table.add_column("Event", overflow="fold")
    table.add_column("Late", no_wrap=True)
    table.add_column("Scan", no_wrap=True)
    table.add_column("Verdict", overflow="fold")
    for entry in entries:
        move, scan = entry.move, entry.scan
        previous = f"\n← {short(move.previous_digest)}" if move.previous_digest is not None else ""
        table.add_row(
            f"{move.source.event_time.astimezone(UTC):%Y-%m-%d\n%H:%M:%S}",
            move.action.value + (f"\n{role}" if (role := _revert_role(move)) else ""),
            f"{short(move.digest)}{previous}{_index_note(entry)}",
            # Who, once CloudTrail said (an entry without one shows nothing: not yet known).
            f"{move.source.event_id}\nby {actor_label(move.actor)}" if move.actor is not None else move.source.event_id,
            "late" if move.late else "",
            _scan_cell(scan),
            _verdict_cell(scan),
        )
    return table


def _revert_role(move: TagMove) -> str | None:
    """An entry's part in an opt-in revert: the overwrite that asked for one, or the push that put the tag back."""
    if move.reverts:
        return "revert"
    return "revert requested" if move.revert_requested else None


def _scan_cell(scan: ScanState | None) -> str:
    if scan is None:
        return "[yellow]unscanned[/yellow]"
    colour = "red" if scan.status is ScanStatus.FAILED else "green"
    return f"[{colour}]{scan.status.value}[/{colour}]\n{scan.scanner}"


def _verdict_cell(scan: ScanState | None) -> str:
    if scan is None or scan.verdict is None:
        return "-"
    if scan.verdict is Verdict.PASS:
        return "[green]pass[/green]"
    counts = severity_counts(scan.finding_counts)
    if scan.verdict is Verdict.UNDECIDED:
        # Not a pass either: the scanner's counts could not decide under the fail severity.
        return f"[yellow]undecided[/yellow]: {counts}" if counts else "[yellow]undecided[/yellow]"
    return f"[red]fail[/red]: {counts}" if counts else "[red]fail[/red]"


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


def _index_note(entry: HistoryEntry) -> str:
    """Under an image index's digest: each platform and its scan (`amd64 ok`, `arm64 ?` while unscanned)."""
    if entry.index is None:
        return ""
    lines = []
    for child in entry.index.children:
        if child.attestation:
            continue
        scan = entry.platform_scans.get(child.digest)
        mark = "?" if scan is None or not scan.completed else ("ok" if scan.passing else "fail")
        lines.append(f"{child.platform.removeprefix('linux/')} {mark}")
    attestations = sum(1 for child in entry.index.children if child.attestation)
    if attestations:
        lines.append(f"+{attestations} attestation{'s' if attestations > 1 else ''}")
    return "\n" + "\n".join(lines)
