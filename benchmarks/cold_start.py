"""Figure 2: cold start as users pay it: a fresh process imports a function's `app.py` and handles one event.

Each sample is a new interpreter (`python -I`) given the environment the template gives the function. It imports
`app.py` the way Lambda does (the function's directory first on `sys.path`, the layer's package next: this
checkout's, not whatever the virtualenv's editable install points at) and invokes `lambda_handler` once with the
function's sample event from `events/`, against the template's ledger table on a moto server. Every sample gets a
fresh table, so every first invocation meets the same empty ledger and makes the same requests. Times run from
process start (taken here just before the spawn: `perf_counter` is the system-wide monotonic clock on Linux) to
the end of the import and to the end of the first invocation.

Beside it, the baseline: a minimal handler, also in a fresh process, that imports boto3 and creates the same two
clients at import, then on its first invocation sends the very requests the real handler sent on that event
(recorded once beforehand with a botocore hook, replayed on its own fresh table).

The template sets `Tracing: Active`, so each process also gets what Lambda gives a traced function
(`LAMBDA_TASK_ROOT`, a sampled `_X_AMZN_TRACE_ID`, `AWS_XRAY_DAEMON_ADDRESS`): Powertools' tracer is enabled and
patches botocore as it does in Lambda. No X-Ray daemon listens, so the segments go over UDP to nobody.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from benchmarks.report import table
from tests.support.containers import moto_server
from tests.support.template import REPO_ROOT, create_ledger_table, template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RUNS = 7  # timed samples per function and per handler, interleaved; medians are reported
WARMUPS = 1  # untimed first samples: byte-compiling and the page cache
MARKER = "COLD-START-PROBE "
LAYER = Path("layers", "tagwarden", "src")  # in a checkout: what the Lambda layer puts on sys.path
REGION = "eu-west-1"
TABLE_PLACEHOLDER = "<ledger-table>"

# The sample event each function's first invocation handles (a new function needs one here).
SAMPLE_EVENTS = {
    "push_guard": "push_guard/push_tagged.json",
    "scan_recorder": "scan_recorder/ecr_scan_complete.json",
    "audit_watcher": "audit_watcher/cloudwatch_logs_envelope.json",
    "trail_watcher": "trail_watcher/put_image_tag_mutability_mutable.json",
    "tag_reverter": "tag_reverter/revert_request.json",
}

# Variables a function only has with an opt-in parameter on: the tag reverter exists only with
# RevertProtectedTags=true, which needs RevertRepositoryPrefixes (empty by default).
OPT_IN_ENVIRONMENT = {"tag_reverter": {"REVERT_REPOSITORY_PREFIXES": "shop/"}}

# Run in the fresh interpreter, with a JSON specification as its argument. Records the requests the handler makes
# when asked to (the recording run is not timed: the hook makes it import boto3 first).
PROBE = f"""
import json, sys, time
started = time.perf_counter()
spec = json.loads(sys.argv[1])
sys.path[:0] = spec["path"]
with open(spec["event"]) as source:
    event = json.load(source)

class Context:
    function_name = spec["function"]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:{REGION}:111122223333:function:" + spec["function"]
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self):
        return 30000

requests = []
if spec["record"]:
    import boto3

    def record(params, model, **_):
        requests.append([model.service_model.service_name, model.name, json.loads(json.dumps(params))])

    boto3._get_default_session().events.register("provide-client-params", record)
import_started = time.perf_counter()
import app
imported = time.perf_counter()
app.lambda_handler(event, Context())
invoked = time.perf_counter()
cpu = time.process_time()
tagwarden = sys.modules.get("tagwarden")
print("{MARKER}" + json.dumps({{
    "started": started, "import_started": import_started, "imported": imported, "invoked": invoked, "cpu": cpu,
    "requests": requests, "tagwarden": getattr(tagwarden, "__file__", None),
    "xray_patched_botocore": "aws_xray_sdk.ext.botocore.patch" in sys.modules,
}}))
"""

# The baseline's app.py. Its requests.json holds the requests the real handler sent, its table left as a placeholder.
BASELINE_HANDLER = f'''"""A minimal handler: boto3 and the same clients at import; when invoked, the same requests."""
import json
import os
from pathlib import Path

import boto3
from botocore import xform_name

TABLE = os.environ["LEDGER_TABLE_NAME"]
REQUESTS = json.loads((Path(__file__).parent / "requests.json").read_text().replace("{TABLE_PLACEHOLDER}", TABLE))
CLIENTS = {{"dynamodb": boto3.client("dynamodb"), "sns": boto3.client("sns")}}


def lambda_handler(event, context):
    for service, operation, params in REQUESTS:
        getattr(CLIENTS[service], xform_name(operation))(**params)
    return {{"requests": len(REQUESTS)}}
'''


class ProbeError(RuntimeError):
    """A sample process failed: its handler did not import or its first invocation raised."""


@dataclass
class Timings:
    """Milliseconds per sample, from process start."""

    startup: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    invocation: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, spawned: float, report: dict[str, Any]) -> None:
        self.startup.append((report["started"] - spawned) * 1000)
        self.imports.append((report["imported"] - report["import_started"]) * 1000)
        self.invocation.append((report["invoked"] - report["imported"]) * 1000)
        self.total.append((report["invoked"] - spawned) * 1000)
        self.cpu.append(report["cpu"] * 1000)

    def clear(self) -> None:
        for series in (self.startup, self.imports, self.invocation, self.total, self.cpu):
            series.clear()


@dataclass
class Function:
    """One function measured: its handler, the baseline beside it, and the requests the handler made."""

    name: str
    event: Path
    handler: Timings = field(default_factory=Timings)
    baseline: Timings = field(default_factory=Timings)
    requests: list[list[Any]] = field(default_factory=list)
    traced: bool = False
    error: str | None = None

    @property
    def ratio(self) -> float:
        """Median total of the handler over the baseline's."""
        return statistics.median(self.handler.total) / statistics.median(self.baseline.total)

    @property
    def cpu_ratio(self) -> float:
        """Median CPU time of the handler's process over the baseline's (steadier than wall time on a busy machine)."""
        return statistics.median(self.handler.cpu) / statistics.median(self.baseline.cpu)

    def requests_by_service(self) -> str:
        counts = Counter(service for service, _, _ in self.requests)
        return ", ".join(f"{service} {count}" for service, count in sorted(counts.items())) or "none"


@dataclass
class Backend:
    """The moto server, a client to create tables on it, and the alerts topic."""

    endpoint: str
    dynamodb: DynamoDBClient
    topic_arn: str
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def fresh_table(self) -> str:
        """A new, empty ledger table, as the template defines it; returns its name."""
        name = f"tagwarden-{next(self._numbers)}-ledger"
        create_ledger_table(self.dynamodb, name)
        return name


def _credentials() -> dict[str, str]:
    # moto accepts any; Lambda gives a function its role's credentials the same way, in the environment.
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


@contextmanager
def backend() -> Iterator[Backend]:
    """A moto server with the alerts topic; tables are created per sample."""
    with moto_server() as endpoint:
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **_credentials())  # type: ignore[call-overload]
        sns = boto3.client("sns", endpoint_url=endpoint, **_credentials())  # type: ignore[call-overload]
        yield Backend(endpoint, dynamodb, sns.create_topic(Name="tagwarden-alerts")["TopicArn"])


# The account the probe's context names; the region is REGION; the stack's name as alerts print it.
ACCOUNT = "111122223333"
STACK_NAME = "tagwarden"


def _resolve(value: Any, parameters: dict[str, Any], conditions: dict[str, Any] | None = None) -> Any:
    """A template value at the parameters' defaults: a literal, a `!Ref` to a parameter or to the account or
    region, and the `!Join`, `!If` (with `!Not`, `!Equals`, `!Condition` conditions) the variables use."""
    conditions = conditions or {}
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_resolve(item, parameters, conditions) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref":
            pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::StackName": STACK_NAME}
            if argument in pseudo:
                return pseudo[argument]
            if argument in parameters:
                return str(parameters[argument].get("Default", ""))
        if function == "Fn::Join":
            separator, items = _resolve(argument, parameters, conditions)
            return separator.join(items)
        if function == "Fn::If":
            condition, when_true, when_false = argument
            chosen = when_true if _resolve(conditions[condition], parameters, conditions) else when_false
            return _resolve(chosen, parameters, conditions)
        if function == "Fn::Not":
            return not _resolve(argument[0], parameters, conditions)
        if function == "Fn::Equals":
            left, right = _resolve(argument, parameters, conditions)
            return left == right
        if function in ("Condition", "Fn::Condition"):
            return _resolve(conditions[argument], parameters, conditions)
    raise ValueError(f"cannot resolve template value {value!r}")


def template_environment(function: str) -> dict[str, str]:
    """The variables the template gives `function` (Globals, then its own), parameters at their defaults.

    The table and topic are references to resources: they are set by the caller.
    """
    loaded = template()
    # Resources also hold `Fn::ForEach` lists: functions are the mappings whose CodeUri is the function's directory.
    resources = [r for r in loaded["Resources"].values() if isinstance(r, dict)]
    (properties,) = (
        r["Properties"] for r in resources if r.get("Properties", {}).get("CodeUri") == f"functions/{function}/"
    )
    variables = {
        **loaded["Globals"]["Function"]["Environment"]["Variables"],
        **properties.get("Environment", {}).get("Variables", {}),
    }
    local = {"LEDGER_TABLE_NAME", "ALERTS_TOPIC_ARN"}
    parameters, conditions = loaded["Parameters"], loaded["Conditions"]
    resolved = {
        name: str(_resolve(value, parameters, conditions)) for name, value in variables.items() if name not in local
    }
    return resolved | OPT_IN_ENVIRONMENT.get(function, {})


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def lambda_environment(function: str, task_root: Path, table: str, stack: Backend, xray_port: int) -> dict[str, str]:
    """What Lambda would give the function's process (nothing inherited from this one but PATH)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "TZ": ":UTC",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL_DYNAMODB": stack.endpoint,
        "AWS_ENDPOINT_URL_SNS": stack.endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": f"tagwarden-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "LAMBDA_TASK_ROOT": str(task_root),
        # Tracing: Active. The daemon address names a port nothing listens on.
        "_X_AMZN_TRACE_ID": "Root=1-6744b1c0-5e8d3a0f9b2c4d6e8f0a1b2c;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray_port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        **template_environment(function),
        "LEDGER_TABLE_NAME": table,
        "ALERTS_TOPIC_ARN": stack.topic_arn,
    }


def _run(path: list[Path], event: Path, environment: dict[str, str], *, record: bool = False) -> tuple[float, Any]:
    """Spawn one sample with `path` first on sys.path; return the spawn time and what the probe reported."""
    spec = {
        "path": [str(directory) for directory in path],
        "event": str(event),
        "function": environment["AWS_LAMBDA_FUNCTION_NAME"],
        "record": record,
    }
    command = [sys.executable, "-I", "-c", PROBE, json.dumps(spec)]
    spawned = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
    reports = [line.removeprefix(MARKER) for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not reports:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeError(f"exit {done.returncode}: {last}")
    return spawned, json.loads(reports[-1])


class Sampler:
    """Runs one function's samples: the recording, then its handler and the baseline, each on a fresh table."""

    def __init__(self, function: Function, stack: Backend, workdir: Path, checkout: Path) -> None:
        self.function = function
        self.stack = stack
        self.task_root = checkout / "functions" / function.name
        self.layer = checkout / LAYER
        self.baseline_root = workdir / function.name
        self.xray_port = _unused_udp_port()

    def _environment(self, task_root: Path) -> dict[str, str]:
        table = self.stack.fresh_table()
        return lambda_environment(self.function.name, task_root, table, self.stack, self.xray_port)

    def record(self) -> None:
        """Run the handler once with a request hook, and write the baseline that replays its requests."""
        environment = self._environment(self.task_root)
        _, report = _run([self.task_root, self.layer], self.function.event, environment, record=True)
        if not report["tagwarden"] or not Path(report["tagwarden"]).is_relative_to(self.layer):
            raise ProbeError(f"tagwarden imported from {report['tagwarden']}, not from {self.layer}")
        self.function.requests = report["requests"]
        self.function.traced = report["xray_patched_botocore"]
        table_name = json.dumps(environment["LEDGER_TABLE_NAME"])
        recorded = json.dumps(report["requests"]).replace(table_name, json.dumps(TABLE_PLACEHOLDER))
        self.baseline_root.mkdir(parents=True)
        (self.baseline_root / "requests.json").write_text(recorded)
        (self.baseline_root / "app.py").write_text(BASELINE_HANDLER)

    def sample(self) -> None:
        """One timed sample of the handler, then one of the baseline."""
        handler, baseline = self.function.handler, self.function.baseline
        runs = (([self.task_root, self.layer], handler), ([self.baseline_root], baseline))
        for path, timings in runs:
            spawned, report = _run(path, self.function.event, self._environment(path[0]))
            timings.add(spawned, report)


def functions() -> list[Function]:
    """Every `functions/*/app.py`, with its sample event."""
    names = sorted(path.parent.name for path in (REPO_ROOT / "functions").glob("*/app.py"))
    measured = [Function(name, REPO_ROOT / "events" / SAMPLE_EVENTS.get(name, "")) for name in names]
    for function in measured:
        if function.name not in SAMPLE_EVENTS:
            function.error = "no sample event (add one to SAMPLE_EVENTS)"
    return measured


def measure(runs: int = RUNS, warmups: int = WARMUPS, checkout: Path = REPO_ROOT) -> list[Function]:
    """Record each function's requests, then time `runs` samples of each, interleaved across functions.

    `checkout` is the tree whose `functions/` and layer are measured (another copy, to compare versions).
    """
    measured = functions()
    with backend() as stack, tempfile.TemporaryDirectory(prefix="tagwarden-baseline-") as workdir:
        samplers = [Sampler(f, stack, Path(workdir), checkout) for f in measured if f.error is None]
        for number in range(warmups + runs):
            for sampler in samplers:
                if sampler.function.error is not None:
                    continue
                try:
                    if number == 0:
                        sampler.record()
                    sampler.sample()
                except ProbeError as error:
                    sampler.function.error = str(error)
                if number < warmups:
                    sampler.function.handler.clear()
                    sampler.function.baseline.clear()
    return measured


def render(measured: list[Function]) -> str:
    """Per function: the handler's import, first invocation and total, the baseline's, and the ratio of totals."""
    headers = [
        "function",
        "requests",
        "import ms",
        "1st call ms",
        "total ms",
        "baseline import",
        "baseline 1st call",
        "baseline total",
        "ratio",
        "CPU ms",
        "baseline CPU",
        "CPU ratio",
    ]
    rows: list[list[str | int | float]] = []
    for function in measured:
        if function.error is not None:
            rows.append([function.name, f"failed: {function.error}", *[""] * (len(headers) - 2)])
            continue
        handler, baseline = function.handler, function.baseline
        rows.append(
            [
                function.name,
                function.requests_by_service(),
                statistics.median(handler.imports),
                statistics.median(handler.invocation),
                statistics.median(handler.total),
                statistics.median(baseline.imports),
                statistics.median(baseline.invocation),
                statistics.median(baseline.total),
                f"{function.ratio:.2f}x",
                statistics.median(handler.cpu),
                statistics.median(baseline.cpu),
                f"{function.cpu_ratio:.2f}x",
            ]
        )
    return table(headers, rows)


def startup_ms(measured: list[Function]) -> float:
    """Median interpreter start-up (from the spawn to the probe's first line), handler and baseline alike."""
    done = [f for f in measured if f.error is None]
    return statistics.median([ms for f in done for ms in (*f.handler.startup, *f.baseline.startup)])


def failed(measured: list[Function]) -> list[Function]:
    """Functions whose handler (or baseline) failed to import or to handle its sample event."""
    return [function for function in measured if function.error is not None]
