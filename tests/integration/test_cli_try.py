"""What a new user meets first: `make try` and the README's examples, `make help`, the demo's own help, and
the one line that says how to get DynamoDB Local."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tagwarden.cli.main import app
from typer.testing import CliRunner

from demo.__main__ import TRY_PORT
from demo.__main__ import main as demo_main
from tests.support.dynamodb_local import DynamoDBLocalError, find_dynamodb_local_jar
from tests.support.template import REPO_ROOT

README = REPO_ROOT / "README.md"
STARTUP_SECONDS = 180


@dataclass(frozen=True)
class Example:
    """A command a user pastes, with the exit code and (for the README's) the output they should see."""

    command: str
    exit_code: int
    output: str | None = None

    def args(self, repo: str) -> list[str]:
        """The command's arguments after `tagwarden`, with `$REPO` expanded as the shell would."""
        program, *args = shlex.split(self.command.replace("$REPO", repo))
        assert program == ".venv/bin/tagwarden"
        return args


@dataclass(frozen=True)
class KeptLedger:
    """`make try` running: what it printed before waiting for Ctrl-C."""

    repo: str
    examples: list[Example]
    printed: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _printed_examples(printed: str) -> tuple[str, list[Example]]:
    """`REPO=...` and each `.venv/bin/tagwarden` line with the exit code its comment announces (`# exit 1: ...`)."""
    lines = printed.splitlines()
    repo = next(line.removeprefix("REPO=") for line in lines if line.startswith("REPO="))
    examples = []
    for line, comment in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith(".venv/bin/tagwarden "):
            announced = re.match(r"\s*# exit (\d)", comment)
            examples.append(Example(line, int(announced.group(1)) if announced else 0))
    return repo, examples


@pytest.fixture(scope="module")
def kept_ledger() -> Iterator[KeptLedger]:
    """`python -m demo --keep` (what `make try` runs) on a free port, until the module's tests are done."""
    port = _free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers/tagwarden/src"), str(REPO_ROOT)]),
        "COLUMNS": "100",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "demo", "--keep", "--port", str(port)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while not printed or not printed[-1].startswith("Ctrl-C stops it"):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(printed)
            assert time.monotonic() < deadline, "".join(printed)
            printed.append(line)
        repo, examples = _printed_examples("".join(printed))
        yield KeptLedger(repo, examples, "".join(printed))
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, rest
        assert "Stopped." in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def tagwarden(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"COLUMNS": None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_make_try_prints_commands_that_work_against_the_kept_ledger(kept_ledger: KeptLedger) -> None:
    assert "Caught: all 4 expected alerts arrived (2 CRITICAL, 1 HIGH, 1 MEDIUM)." in kept_ledger.printed
    assert "export AWS_ACCESS_KEY_ID=" in kept_ledger.printed  # the commands work without an AWS account
    commands = {next(word for word in example.args("") if not word.startswith("-")) for example in kept_ledger.examples}
    assert commands == {"history", "check", "pin", "backfill"}
    for example in kept_ledger.examples:
        assert "--endpoint-url http://127.0.0.1:" in example.command
        assert "--region eu-west-1 --table tagwarden-demo-ledger" in example.command

        code, output = tagwarden(example.args(kept_ledger.repo))

        assert code == example.exit_code, (example.command, output)
        assert "error" not in output, output


def readme_examples() -> list[Example]:
    """The `$ .venv/bin/tagwarden ...` examples of the README's command section, each with its output and
    exit code (a `$ echo $?` line after the output, else 0)."""
    section = README.read_text().split("## The `tagwarden` command", 1)[1].split("\n## ", 1)[0]
    examples = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.DOTALL):
        for chunk in re.split(r"^\$ (?=\.venv/bin/tagwarden )", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            output, _, code = output.partition("$ echo $?\n")
            examples.append(Example(command, int(code.strip() or 0), output.rstrip("\n")))
    return examples


def test_the_readmes_examples_are_what_make_try_prints_and_what_they_answer(kept_ledger: KeptLedger) -> None:
    # The README shows `make try`'s own port; the kept ledger of the test is on a free one.
    readme_endpoint = f"http://127.0.0.1:{TRY_PORT}"
    (kept_endpoint,) = set(re.findall(r"http://127\.0\.0\.1:\d+", kept_ledger.printed))
    examples = [
        Example(example.command.replace(readme_endpoint, kept_endpoint), example.exit_code, example.output)
        for example in readme_examples()
    ]

    assert {example.command for example in examples} == {example.command for example in kept_ledger.examples}
    for example in examples:
        code, output = tagwarden(example.args(kept_ledger.repo))

        assert code == example.exit_code, example.command
        shown = "\n".join(line.rstrip() for line in output.rstrip("\n").splitlines())
        assert shown == example.output.replace("$REPO", kept_ledger.repo), example.command  # type: ignore[union-attr]


def test_make_try_names_another_port_when_its_own_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        assert demo_main(["--keep", "--port", str(port)]) == 2

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"demo: port {port} is not free") and f"make try PORT={port + 1}" in line


def test_make_help_aligns_every_description() -> None:
    make = shutil.which("make")
    assert make is not None
    listed = subprocess.run([make, "-s", "help"], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout

    lines = listed.splitlines()
    assert {"make try", "make demo", "make security-scan"} <= {" ".join(line.split()[:2]) for line in lines}
    starts = {len(line) - len(line.split(maxsplit=2)[2]) for line in lines}
    assert len(starts) == 1, listed


def test_a_first_make_demo_says_what_it_installs_before_it_starts(tmp_path: Path) -> None:
    # A fresh checkout's first run, stopped where it would create the environment (PYTHON3=false).
    make = shutil.which("make")
    assert make is not None
    first = subprocess.run(
        [make, "-s", f"VENV={tmp_path / '.venv'}", "PYTHON3=false", "demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert first.returncode != 0
    assert first.stdout.startswith(f"==> Python environment ({tmp_path / '.venv'}): first run installs about ")
    assert "minutes" in first.stdout


def test_the_demos_help_names_the_command_that_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        demo_main(["--help"])

    usage = capsys.readouterr().out
    assert usage.startswith("usage: python -m demo ")
    assert "make demo" in usage and "make try" in usage


def test_missing_dynamodb_local_is_one_line_naming_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DynamoDBLocalError) as raised:
        find_dynamodb_local_jar(tmp_path)
    assert "make node" in str(raised.value) and "make node_modules" not in str(raised.value)
    assert "\n" not in str(raised.value)

    # The demo on DynamoDB Local, in a checkout without it: that line, no traceback.
    monkeypatch.setattr("tests.support.containers.REPO_ROOT", tmp_path)
    assert demo_main(["--dynamodb-local"]) == 2

    err = capsys.readouterr().err
    assert err.splitlines() == [f"demo: {raised.value}"]
