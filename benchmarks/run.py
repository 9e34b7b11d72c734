"""Tagwarden benchmarks (`make bench`): DynamoDB requests per event, cold start, and throughput on moto.

Prints figures; the verdicts are the request budget of the common push path and the benign multi-arch
day's goal (no alert above LOW), each failing the run (exit status 1) when missed. A case that does not
take the path it is named after, or a handler that does not import or handle its sample event, fails it
too (status 2).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Before anything imports Powertools (it reads these once): quiet logs, no tracing, a metrics namespace.
os.environ.update(
    {
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        "LOG_LEVEL": "CRITICAL",
        "POWERTOOLS_METRICS_NAMESPACE": "Tagwarden",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)

from importlib.metadata import version  # noqa: E402

from benchmarks import (  # noqa: E402 - needs the repo root on sys.path
    admission,
    alert_rendering,
    audit_throughput,
    cold_start,
    load,
    multiarch_day,
    posture,
    prepush,
    request_counts,
    throughput,
)
from benchmarks.report import heading  # noqa: E402


def requests_section() -> bool:
    """Figure 1; True when the common push path is within its budget."""
    print(heading("1. DynamoDB requests per event (real lambda_handler on moto)"))
    print("Counted per API call with a botocore before-call hook on the handlers' clients.")
    print("bookkeeping: UpdateItems on the alert outbox (lease, delivered flag); budgeted: DynamoDB - bookkeeping.")
    print("ECR: the push guard's requests to ECR, outside the ledger budget (an index push reads its manifest once).\n")
    results = request_counts.measure()
    print(request_counts.render(results))
    budget = request_counts.COMMON_PATH_BUDGET
    common = ", ".join(f"{r.case.name}: {r.budgeted}" for r in results if r.case.common_push_path)
    print(f"\nBudget: the common push path makes at most {budget} DynamoDB requests (alert bookkeeping aside).")
    print(f"  {common}")
    over = request_counts.over_budget(results)
    print("  OVER BUDGET: " + ", ".join(r.case.name for r in over) if over else "  budget OK")
    return not over


def cold_start_section() -> bool:
    """Figure 2; True when every handler imported and handled its sample event."""
    print(heading("2. Cold start as users pay it: a fresh process, import + first invocation (moto server)"))
    print("Each function's app.py, with the template's environment, handles its sample event from events/ on a")
    print("fresh ledger table. Baseline: a minimal handler that imports boto3, creates the same clients and sends")
    print("the same requests. Times in ms from process start, medians; ratio: total over baseline total. CPU: the")
    print("process's user + system time to the end of the first invocation (moto's time is not in it; steadier")
    print("than wall time on a busy machine).\n")
    measured = cold_start.measure()
    print(cold_start.render(measured))
    print(f"\nInterpreter start-up, part of every total: {cold_start.startup_ms(measured):.1f} ms (median).")
    traced = ", ".join(f"{f.name}: {'yes' if f.traced else 'no'}" for f in measured if f.error is None)
    print(f"Tracing as in Lambda (Tracing: Active), X-Ray patched botocore: {traced}.")
    print("No X-Ray daemon listens: segments go over UDP to nobody, so their delivery is not measured.")
    failed = cold_start.failed(measured)
    if failed:
        print(f"Not measured (failed): {', '.join(f.name for f in failed)}.")
    return not failed


def throughput_section() -> None:
    """Figure 3."""
    print(heading("3. Throughput through the real handlers on moto (warm container, one process)"))
    print(throughput.render(throughput.measure()))


def audit_section() -> None:
    """Figure 4."""
    print(heading("4. Audit watcher: audit lines per second through the real handler on moto, and the floor"))
    print(audit_throughput.render(audit_throughput.measure()))


def load_section() -> bool:
    """Figure 5; True when the ledger audit finds nothing lost, doubled or out of order."""
    print(heading("5. Load on DynamoDB Local: concurrent, duplicated, shuffled deliveries"))
    run = load.measure()
    print(load.render(run))
    verdict = load.sound(run)
    print("\nledger audit: " + ("sound" if verdict else "BROKEN (see the figures that must be 0)"))
    return verdict


def admission_section() -> bool:
    """Figure 6; True when a review costs one ledger request (latency is reported against its goal)."""
    print(heading("6. Admission webhook: one AdmissionReview over HTTPS, ledger on DynamoDB Local"))
    print("The real server in process, one kept TLS connection (as kube-apiserver), a pod with three containers")
    print("(init, native sidecar, app) all pinned; DynamoDB requests counted with botocore's before-call hook.\n")
    figures = admission.measure()
    print(admission.render(figures))
    return figures.requests_per_review <= admission.REQUESTS_GOAL


def prepush_section() -> None:
    """Figure 7."""
    print(heading("7. tagwarden prepush: round trips to docker-registry on loopback (TLS, basic and bearer auth)"))
    print(prepush.__doc__.split("\n\n", 1)[1].strip() if prepush.__doc__ else "")
    print(f"{prepush.CHECKS} checks per case.\n")
    print(prepush.render(prepush.measure(), prepush.measure_trust()))


def revert_section() -> bool:
    """Figure 8 (opt-in revert, issue 12); True when each attack made one alert, one revert, one PutImage."""
    from benchmarks import revert_duplicates

    print(heading("8. Opt-in revert under duplicated and out-of-order events (real handlers on moto)"))
    run = revert_duplicates.measure()
    print(revert_duplicates.render(run))
    return run.sound


def posture_section() -> None:
    """Figure 9."""
    print(heading("9. tagwarden posture on a 200-repository moto ECR (the real command, --json)"))
    print(posture.render(posture.measure()))


def alert_rendering_section() -> None:
    """Figure 10 (issue 13): what readable alerts cost per alert, and the fan-out to the alert sinks."""
    print(heading("10. Alert renderings: e-mail + JSON, chat, Security Hub per alert (medians), and the fan-out"))
    print(alert_rendering.render(alert_rendering.measure()))


def multiarch_day_section() -> bool:
    """Figure 11 (issue 10): alerts on a benign multi-arch CI/CD day; True when none is above LOW."""
    print(heading("11. A benign CI/CD day of multi-arch releases: alerts by severity (real handlers on moto)"))
    print(multiarch_day.__doc__.split("\n\n", 1)[1].strip() if multiarch_day.__doc__ else "")
    print()
    days = multiarch_day.measure()
    print(multiarch_day.render(days))
    return multiarch_day.quiet(days)


@contextmanager
def timed() -> Iterator[None]:
    """Print how long the section took."""
    started = time.perf_counter()
    yield
    print(f"\n({time.perf_counter() - started:.1f} s)")


def main() -> int:
    """Run the eleven figures; the exit status reflects the budget and the benchmark's own soundness."""
    started = time.perf_counter()
    print(
        f"Tagwarden benchmarks: Python {platform.python_version()}, boto3 {version('boto3')}, "
        f"moto {version('moto')}, Powertools {version('aws-lambda-powertools')}, {os.cpu_count()} CPUs"
    )
    try:
        with timed():
            within_budget = requests_section()
    except request_counts.ScenarioError as error:
        print(f"\nbenchmark scenario broken: {error}", file=sys.stderr)
        return 2
    with timed():
        cold_started = cold_start_section()
    with timed():
        throughput_section()
    with timed():
        audit_section()
    with timed():
        loaded_soundly = load_section()
    with timed():
        one_request_per_review = admission_section()
    with timed():
        prepush_section()
    with timed():
        reverted_soundly = revert_section()
    with timed():
        posture_section()
    with timed():
        alert_rendering_section()
    with timed():
        multiarch_day_quiet = multiarch_day_section()
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    if not cold_started:
        print("a handler failed to import or to handle its sample event (see figure 2)", file=sys.stderr)
        return 2
    sound = within_budget and loaded_soundly and one_request_per_review and reverted_soundly and multiarch_day_quiet
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
