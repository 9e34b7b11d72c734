"""`tagwarden history` stays readable however wide the terminal: no column dropped, no value cut short."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli import IMAGE, A, B, C, tagwarden
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.stack import Stack

EVENT_IDS = ("92ff2e02-f58b-4581-afbc-dce329adf1e9", "ef86afca-940b-44fc-a10a-09d80c50b82a", "late-push", "gone")


@pytest.fixture
def eventful_tag(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> str:
    """`main`: pushed and scanned with findings of every severity, moved, a late push, then deleted."""
    first, moved, late, deleted = EVENT_IDS
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id=first))
    counts = {"LOW": 4, "CRITICAL": 1, "MEDIUM": 3, "HIGH": 2, "INFORMATIONAL": 5}
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z", counts=counts))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z", event_id=moved))
    push_guard(ecr_image_action(tag="main", digest=C, time="2026-11-20T10:03:00Z", event_id=late))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:09:00Z", event_id=deleted, action="DELETE"))
    return f"{IMAGE}:main"


def column(lines: list[str], header: str, name: str, following: str | None) -> list[str]:
    """The text of one column of a table printed without vertical lines, line by line."""
    end = header.index(following) if following else None
    return [line[header.index(name) : end].strip() for line in lines]


@pytest.mark.parametrize("columns", ["80", "81", "100", "120", "160", None])  # None: piped, no COLUMNS
def test_history_keeps_every_column_whole_at_any_width(stack: Stack, eventful_tag: str, columns: str | None) -> None:
    result = tagwarden("history", eventful_tag, "--table", stack.table_name, env={"COLUMNS": columns})

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns or 200)
    assert "…" not in result.stdout  # nothing cut short with an ellipsis
    header = next(line for line in lines if line.startswith("Time (UTC)"))
    for name in ("Action", "← previous", "Event", "Late", "Scan", "Verdict"):
        assert name in header
    body = lines[lines.index(header) + 2 :]  # below the header's rule
    assert [cell for cell in column(body, header, "Action", "← previous") if cell] == ["PUSH", "PUSH", "PUSH", "DELETE"]
    assert [cell for cell in column(body, header, "Late", "Scan") if cell] == ["late"]
    # Digests by the documented shortening (12 hex digits), each previous one after an arrow.
    digests = [cell for cell in column(body, header, "← previous", "Event") if cell]
    assert digests == ["a" * 12, "c" * 12, "← " + "a" * 12, "b" * 12, "← " + "c" * 12, "b" * 12, "← " + "b" * 12]
    # Event ids and the verdict wrap over lines of their column, whole.
    assert "".join(column(body, header, "Event", "Late")) == "".join(EVENT_IDS[i] for i in (0, 2, 1, 3))
    verdicts = " ".join(cell for cell in column(body, header, "Verdict", None) if cell not in ("", "-"))
    assert verdicts == "fail: 1 CRITICAL, 2 HIGH, 3 MEDIUM, 4 LOW, 5 INFORMATIONAL"  # most severe first


def test_history_json_has_every_value_in_full(stack: Stack, eventful_tag: str) -> None:
    result = tagwarden("--json", "history", eventful_tag, "--table", stack.table_name)

    entries = json.loads(result.stdout)
    assert [entry["event_id"] for entry in entries] == [EVENT_IDS[0], EVENT_IDS[2], EVENT_IDS[1], EVENT_IDS[3]]
    assert [entry["digest"] for entry in entries] == [A, C, B, B]
    assert [entry["late"] for entry in entries] == [False, True, False, False]
