"""The global options: declared once, accepted before or after the command, with the same meaning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tagwarden.cli.main import MissingOptionValueError, hoist_global_options

from tests.integration.test_cli import IMAGE, A, assert_one_line_error, tagwarden
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.stack import Stack

TAKES_VALUE = {"--json": False, "--table": True, "--region": True}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["history", "X", "--table", "T"], ["--table", "T", "history", "X"]),
        (["history", "X", "--table=T", "--json"], ["--table=T", "--json", "history", "X"]),
        (["--json", "history", "X", "--region", "r"], ["--json", "--region", "r", "history", "X"]),
        (["--table", "history", "check", "X"], ["--table", "history", "check", "X"]),  # a table named history
        (["replay", "f", "--cluster", "c", "--json"], ["--json", "replay", "f", "--cluster", "c"]),
        (["replay", "--", "--json"], ["replay", "--", "--json"]),  # after `--`, a file named --json
        (["history", "--help"], ["history", "--help"]),
        (["--json"], ["--json"]),
    ],
)
def test_global_options_after_the_command_move_before_it(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args, TAKES_VALUE) == expected


@pytest.fixture
def scanned(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> str:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z"))
    return f"{IMAGE}:1.4.0"


@pytest.mark.parametrize("command", ["history", "check", "pin"])
def test_global_options_before_or_after_the_command_mean_the_same(stack: Stack, scanned: str, command: str) -> None:
    table = stack.table_name
    before = tagwarden("--json", "--table", table, "--region", "eu-west-1", command, scanned)
    after = tagwarden(command, scanned, "--json", "--table", table, "--region", "eu-west-1")
    mixed = tagwarden("--table", table, command, "--region=eu-west-1", scanned, "--json")

    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)  # --json took effect
    assert (after.exit_code, after.stdout) == (0, before.stdout)
    assert (mixed.exit_code, mixed.stdout) == (0, before.stdout)


def test_global_options_after_the_command_reach_replay(stack: Stack, tmp_path: Path) -> None:
    events = tmp_path / "push.json"
    events.write_text(json.dumps(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z")))

    replayed = tagwarden("replay", str(events), "--table", stack.table_name, "--json")

    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["events"][0]["outcome"] == "recorded"


def test_environment_variables_still_name_the_ledger(stack: Stack, scanned: str) -> None:
    result = tagwarden("pin", scanned, env={"TAGWARDEN_TABLE": stack.table_name})

    assert (result.exit_code, result.stdout) == (0, f"{IMAGE}@{A}\n")


def test_a_global_option_without_its_value_is_a_usage_error(stack: Stack, scanned: str) -> None:
    with pytest.raises(MissingOptionValueError, match="--table"):
        hoist_global_options(["check", "X", "--table"], TAKES_VALUE)
    result = tagwarden("check", scanned, "--table")

    assert result.exit_code == 2
    assert "Option '--table' requires an argument" in " ".join(result.stderr.split())


def test_help_documents_each_global_option_once_and_every_command_points_to_it() -> None:
    top = tagwarden("--help")
    command = tagwarden("history", "--help")

    assert top.exit_code == 0 and command.exit_code == 0
    for option in ("--json", "--stack-name", "--table", "--profile", "--region", "--endpoint-url"):
        declared = [line for line in top.stdout.splitlines() if line.startswith(f"│ {option} ")]
        assert len(declared) == 1, option
        assert option in " ".join(command.stdout.split()), option  # named in the command's pointer to them
    declared_by_command = [line.lstrip("│ ").split()[0] for line in command.stdout.splitlines() if "│ --" in line]
    assert declared_by_command == ["--help"]
    assert "before or after the command" in top.stdout
    assert "before or after" in command.stdout and "tagwarden --help" in command.stdout


def test_history_of_an_unknown_tag_exits_2_with_options_anywhere(stack: Stack, scanned: str) -> None:
    result = tagwarden("--table", stack.table_name, "history", f"{IMAGE}:nope")

    assert_one_line_error(result, 2, "unknown tag")
