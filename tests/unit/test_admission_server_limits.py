"""The server's pieces that bound a client (admission.server): the body budget and the catch-all answer.
The limits themselves are exercised through the real server in tests/integration/test_admission_webhook.py."""

from __future__ import annotations

import json
import threading
import time

from tagwarden.admission.server import ByteBudget, answer
from tagwarden.domain.admission import AdmissionPolicy, Mode
from tagwarden.domain.registry_scope import RegistryScope
from tagwarden.services.admission import AdmissionService

from tests.support.admission import admission_review


def test_the_budget_lets_bodies_in_while_they_fit_and_the_next_in_when_one_leaves() -> None:
    budget = ByteBudget(10)
    assert budget.acquire(6, 0) and budget.acquire(4, 0)
    assert not budget.acquire(1, 0.05)  # full: refused after its wait
    threading.Timer(0.1, budget.release, (6,)).start()
    started = time.monotonic()

    assert budget.acquire(5, 2) and time.monotonic() - started < 1
    assert budget.acquire(20, 0) is False  # counted as the whole budget, which 9 bytes in use leave no room for
    budget.release(5)
    budget.release(4)
    assert budget.acquire(20, 0)  # alone, a body larger than the budget still gets in


class _BrokenLedger:
    def read_admission_view(self, tags: object, digests: object) -> object:
        raise RuntimeError("a bug")


def test_a_fault_of_the_server_is_a_500_with_json_and_one_log_line() -> None:
    lines: list[str] = []
    service = AdmissionService(_BrokenLedger(), AdmissionPolicy(RegistryScope()), lines.append)  # type: ignore[arg-type]
    review = admission_review("pod_create_generate_name")

    status, body = answer(service, json.dumps(review).encode(), Mode.ENFORCE)

    assert status == 500 and body == {"error": "internal error; the webhook's log has the details"}
    [line] = [json.loads(text) for text in lines]
    assert line["message"] == "review failed" and line["problem"] == "RuntimeError: a bug"
    assert line["AdmissionFailedReviews"] == 1
