"""What `tagwarden replay` tells a new user: an empty file is a mistake, the worst alerts come first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import A, B, assert_one_line_error, tagwarden, write_events
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.stack import Stack
from tests.support.template import create_ledger_table


@pytest.mark.parametrize("content", ["", "\n\n", "[]", "  [ ]\n"])
def test_a_file_without_events_is_a_usage_error_and_nothing_is_replayed(
    stack: Stack, tmp_path: Path, content: str
) -> None:
    good = write_events(tmp_path / "good.json", [ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z")])
    empty = tmp_path / "empty.json"
    empty.write_text(content)

    result = tagwarden("replay", str(good), str(empty), "--table", stack.table_name)

    assert_one_line_error(result, 2, f"{empty}: no events to replay")
    assert stack.items() == []  # not even the good file's event


def test_would_alert_lists_the_most_severe_first(stack: Stack, tmp_path: Path) -> None:
    # `latest` moving after its scan is LOW, protected `1.4.0` moving after its scan is CRITICAL: raised in
    # that order (as --json lists them), printed CRITICAL first.
    events = []
    for tag, minute in (("latest", 0), ("1.4.0", 10)):
        events += [
            ecr_image_action(tag=tag, digest=A, time=f"2026-11-20T10:{minute:02}:00Z"),
            ecr_scan(digest=A, tags=[tag], time=f"2026-11-20T10:{minute + 1:02}:00Z"),
            ecr_image_action(tag=tag, digest=B, time=f"2026-11-20T10:{minute + 2:02}:00Z"),
        ]
    path = write_events(tmp_path / "moves.json", events)
    create_ledger_table(stack.dynamodb, "second-ledger")

    text = tagwarden("replay", str(path), "--table", stack.table_name)
    raised = json.loads(tagwarden("replay", str(path), "--table", "second-ledger", "--json").stdout)

    assert text.exit_code == 0, text.output
    assert [alert["severity"] for alert in raised["alerts"]["would_alert"]] == ["LOW", "CRITICAL"]
    listed = [line.split()[4] for line in text.stdout.splitlines() if line.startswith("  would alert: ")]
    assert listed == ["CRITICAL", "LOW"]
