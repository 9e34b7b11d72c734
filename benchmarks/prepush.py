"""Figure 7: `tagwarden prepush` round trips against Debian's docker-registry on loopback.

Each check is what one run of the command does: a fresh client (so the ping, the login and, for bearer
auth, the token are paid every time, as in CI), then HEAD on the tag's manifest (and, on a 404, the GET
that reads the registry's error code, the proof the tag is absent). HTTP requests are counted with a `requests` response
hook on the injected session (token service included); the time is the wall clock of the whole check.
The TLS trust (the system's CAs plus the private CA) is built once per process and cached: its cost,
paid before a process's first check, is measured apart.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tagwarden.adapters.oci_registry import OciRegistry, RegistryCredentials, RegistryEndpoint, tls_context
from tagwarden.domain.images import ImageName
from tagwarden.domain.prepush import PushVerdict
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import TagRef
from tagwarden.services.prepush import check_before_push

from benchmarks.report import table
from tests.support.oci_registry import PASSWORD, USERNAME, LocalRegistry, make_ca, run_registry, run_token_server

CHECKS = 100
OTHER = "sha256:" + "e" * 64


@dataclass(frozen=True, slots=True)
class Case:
    """One kind of check: which registry, which tag, what the decision must be."""

    name: str
    registry: str  # key into the started registries
    tag: str
    verdict: PushVerdict


@dataclass(frozen=True, slots=True)
class Measured:
    """Requests per check and the check's latency."""

    case: Case
    requests: int
    p50_ms: float
    p99_ms: float


CASES = (
    Case("TLS + basic, tag present (would move)", "basic", "1.4.0", PushVerdict.REFUSED),
    Case("TLS + basic, tag absent", "basic", "9.9.9", PushVerdict.ABSENT),
    Case("TLS + bearer token, tag present (would move)", "token", "1.4.0", PushVerdict.REFUSED),
    Case("TLS + bearer token, tag absent", "token", "9.9.9", PushVerdict.ABSENT),
)


@contextmanager
def registries() -> Iterator[dict[str, LocalRegistry]]:
    """A TLS + htpasswd registry and a TLS + token-auth one, each holding shop/api:1.4.0."""
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        directory = Path(scratch)
        ca = make_ca(directory / "ca")
        basic = stack.enter_context(run_registry(directory / "basic", ca=ca, basic=(USERNAME, PASSWORD)))
        token_server = stack.enter_context(run_token_server(directory, ca))
        token = stack.enter_context(run_registry(directory / "token", ca=ca, token=token_server))
        for registry in (basic, token):
            registry.pusher().image("shop/api", "1.4.0", "bench")
        yield {"basic": basic, "token": token}


def _check(registry: LocalRegistry, tag: TagRef, counter: Callable[..., Any]) -> PushVerdict:
    session = requests.Session()
    session.hooks["response"].append(counter)
    endpoint = RegistryEndpoint(registry.url, str(registry.ca_file) if registry.ca_file else None)
    resolver = OciRegistry(endpoint, RegistryCredentials(USERNAME, PASSWORD), session)
    return check_before_push(resolver, TagPolicy(), tag, OTHER).decision.verdict


def measure(checks: int = CHECKS) -> list[Measured]:
    """Every case, `checks` times each; raises if a check does not reach the case's verdict."""
    results = []
    with registries() as started:
        for case in CASES:
            registry = started[case.registry]
            tag = TagRef(ImageName(registry.host, "shop/api"), case.tag)
            sent = 0

            def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
                nonlocal sent
                sent += 1

            _check(registry, tag, count)  # warm-up: TLS session setup code paths, imports
            sent = 0
            timings = []
            for _ in range(checks):
                started_at = time.perf_counter()
                verdict = _check(registry, tag, count)
                timings.append((time.perf_counter() - started_at) * 1000)
                if verdict is not case.verdict:
                    raise RuntimeError(f"{case.name}: {verdict.value}, expected {case.verdict.value}")
            cuts = statistics.quantiles(timings, n=100)
            results.append(Measured(case, round(sent / checks), statistics.median(timings), cuts[98]))
    return results


def measure_trust(runs: int = 20) -> tuple[float, float]:
    """Building the TLS trust (the system's CAs plus a private CA), which a process pays once, not per
    check (the context is cached): p50 and max in milliseconds."""
    build = tls_context.__wrapped__  # the uncached function: what the first check of a process pays
    with tempfile.TemporaryDirectory() as scratch:
        ca = make_ca(Path(scratch))
        timings = []
        for _ in range(runs):
            started_at = time.perf_counter()
            build(str(ca.ca_file), None)
            timings.append((time.perf_counter() - started_at) * 1000)
    return statistics.median(timings), max(timings)


def render(results: list[Measured], trust: tuple[float, float] | None = None) -> str:
    """The figure as a table (and the once-per-process cost of the TLS trust, when measured)."""
    rows = [(r.case.name, r.requests, r.p50_ms, r.p99_ms) for r in results]
    text = table(("check (fresh client each: ping, login, HEAD)", "HTTP requests", "p50 ms", "p99 ms"), rows)
    if trust is not None:
        text += (
            f"\nOnce per process, before the first check: loading the TLS trust (system CAs + --ca-file) "
            f"p50 {trust[0]:.1f} ms, max {trust[1]:.1f} ms."
        )
    return text


if __name__ == "__main__":
    print(render(measure(), measure_trust()))
