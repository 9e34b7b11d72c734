"""Read, decide, write-if-unchanged, and start again when someone else wrote first."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from tagwarden.observability import metrics
from tagwarden.ports import ConcurrentUpdateError

T = TypeVar("T")
MAX_ATTEMPTS = 8


def with_optimistic_retries(attempt: Callable[[], T], max_attempts: int = MAX_ATTEMPTS) -> T:
    """Run `attempt` (which reads, decides and writes conditionally) until no concurrent writer intervenes."""
    for number in range(1, max_attempts + 1):
        try:
            return attempt()
        except ConcurrentUpdateError:
            if number == max_attempts:
                raise
            metrics.add_metric(name="ConcurrentUpdateRetries", unit="Count", value=1)
            # A short jittered pause lets the other writer finish before this one reads again.
            time.sleep(random.uniform(0, 0.01 * number))  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable: the loop returns or raises")
