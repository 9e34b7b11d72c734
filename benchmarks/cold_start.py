"""Figure 2: cold start, as the time to import each function's `app.py` against `import boto3` alone.

Each import runs in a fresh interpreter (`python -I -c`), timed with `perf_counter` around the import only,
so interpreter startup is excluded. Isolated mode keeps the current directory and PYTHON* variables off
`sys.path`; the function's own directory is put first, as Lambda puts the task root. Every `functions/*/app.py`
is measured, so a new function is picked up without changes here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import table
from tests.support.template import REPO_ROOT

RUNS = 7  # timed runs per module, interleaved; the median is reported
WARMUPS = 1  # untimed first runs: byte-compile and page-cache effects
PRODUCT_GOAL = 1.5  # handler import / boto3 import
MARKER = "COLD-START-PROBE"

# Imported from `sys.argv[1]` (a directory put first on sys.path, or "" for none); prints seconds, the number
# of modules the import loaded, and whether boto3 was among them.
PROBE = f"""
import sys, time
if sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
loaded = len(sys.modules)
start = time.perf_counter()
import {{module}}
elapsed = time.perf_counter() - start
print("{MARKER}", elapsed, len(sys.modules) - loaded, "boto3" in sys.modules)
"""

# What the template gives every function; the values only need to pass the configuration's validation.
FUNCTION_ENVIRONMENT = {
    "LEDGER_TABLE_NAME": "tagwarden-ledger",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:tagwarden-alerts",
}


@dataclass
class Target:
    """One import to time."""

    label: str
    module: str
    directory: Path | None = None
    seconds: list[float] = field(default_factory=list)
    modules: int = 0
    loads_boto3: bool = False
    error: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000


def targets() -> list[Target]:
    """boto3 alone, then every function's handler module."""
    handlers = sorted((REPO_ROOT / "functions").glob("*/app.py"))
    return [
        Target("import boto3", "boto3"),
        *(Target(str(path.relative_to(REPO_ROOT)), "app", path.parent) for path in handlers),
    ]


def _probe(target: Target) -> None:
    command = [sys.executable, "-I", "-c", PROBE.format(module=target.module), str(target.directory or "")]
    environment = {**os.environ, **FUNCTION_ENVIRONMENT}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
    lines = [line.split() for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        target.error = f"import failed (exit {done.returncode}): {last}"
        return
    _, seconds, modules, loads_boto3 = lines[-1]
    target.seconds.append(float(seconds))
    target.modules = int(modules)
    target.loads_boto3 = loads_boto3 == "True"


def measure(runs: int = RUNS, warmups: int = WARMUPS) -> list[Target]:
    """Time every target `runs` times, interleaved so that machine noise spreads evenly."""
    measured = targets()
    for number in range(warmups + runs):
        for target in measured:
            if target.error is None:
                _probe(target)
                if number < warmups and target.error is None:
                    target.seconds.clear()
    return measured


def _ratio(target: Target, baseline: Target) -> str:
    if not baseline.seconds:
        return "n/a"
    return f"{target.median_ms / baseline.median_ms:.2f}x"


def render(measured: list[Target]) -> str:
    """Absolute times and each import's ratio to boto3's (the first target)."""
    baseline = measured[0]
    rows: list[list[str | int | float]] = []
    for target in measured:
        if target.error is not None:
            rows.append([target.label, target.error, "", "", "", "", ""])
            continue
        seconds = target.seconds
        rows.append(
            [
                target.label,
                target.median_ms,
                min(seconds) * 1000,
                max(seconds) * 1000,
                target.modules,
                "yes" if target.loads_boto3 else "no",
                _ratio(target, baseline),
            ]
        )
    headers = ["import", f"median ms (n={RUNS})", "min ms", "max ms", "modules loaded", "boto3 loaded", "vs boto3"]
    return table(headers, rows)


def failed(measured: list[Target]) -> list[Target]:
    """Targets whose import failed."""
    return [target for target in measured if target.error is not None]


def above_goal(measured: list[Target]) -> list[Target]:
    """Handlers whose import takes more than the product goal times boto3's."""
    baseline, *handlers = measured
    if baseline.error is not None:
        return []
    return [t for t in handlers if t.error is None and t.median_ms / baseline.median_ms > PRODUCT_GOAL]
