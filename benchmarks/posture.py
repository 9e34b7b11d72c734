"""`tagwarden posture` on a 200-repository moto ECR: seconds for the whole command (CLI runner, in process)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time
from dataclasses import dataclass

import boto3
from moto import mock_aws
from typer.testing import CliRunner

from benchmarks.report import table

REPOSITORIES = 200
RUNS = 5
REGION = "eu-west-1"
SETTINGS = [
    ("IMMUTABLE", ()),
    ("IMMUTABLE_WITH_EXCLUSION", ("latest",)),
    ("MUTABLE", ()),
    ("IMMUTABLE_WITH_EXCLUSION", ("latest", "v*")),
]


@dataclass(frozen=True, slots=True)
class PostureRun:
    """The command's wall time over `RUNS` runs, and what it found."""

    seconds: list[float]
    repositories: int
    gaps: int


def measure() -> PostureRun:
    """Create the repositories on moto (a quarter of each setting), then time the real command."""
    from tagwarden.cli.main import app

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        for number in range(REPOSITORIES):
            mutability, filters = SETTINGS[number % len(SETTINGS)]
            kwargs: dict[str, object] = {"repositoryName": f"team-{number % 7}/app-{number:03d}"}
            kwargs["imageTagMutability"] = mutability
            if filters:
                wildcards = [{"filterType": "WILDCARD", "filter": f} for f in filters]
                kwargs["imageTagMutabilityExclusionFilters"] = wildcards
            ecr.create_repository(**kwargs)  # type: ignore[arg-type]
        seconds: list[float] = []
        report: dict[str, object] = {}
        for _ in range(RUNS):
            started = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                result = CliRunner().invoke(app, ["--json", "posture", "--region", REGION])
            seconds.append(time.perf_counter() - started)
            if result.exit_code not in (0, 1):
                raise RuntimeError(f"posture failed: {result.output}")
            report = json.loads(result.stdout)
        repositories = report["repositories"]
        assert isinstance(repositories, list)
        gaps = report["gaps"]
        assert isinstance(gaps, int)
        return PostureRun(seconds, len(repositories), gaps)


def render(run: PostureRun) -> str:
    """The figure as a table."""
    rows = [
        (
            f"{run.repositories} repositories",
            statistics.median(run.seconds),
            min(run.seconds),
            max(run.seconds),
            run.gaps,
        )
    ]
    return table(["registry", "median s", "min s", "max s", "gaps"], rows)


if __name__ == "__main__":
    print(render(measure()))
