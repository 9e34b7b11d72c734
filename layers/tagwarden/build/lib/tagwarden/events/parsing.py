"""Validate an incoming event against its model, with one structured error that names the bad fields."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tagwarden.observability import logger, metrics

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_REPORTED_PROBLEMS = 10


class InvalidEventError(ValueError):
    """The event does not have the documented shape; it is retried, then dead-lettered, never half-written."""


def describe_validation_error(error: ValidationError) -> list[dict[str, str]]:
    """The failing fields and why, without echoing the (possibly huge or hostile) input values."""
    return [
        {"field": ".".join(str(part) for part in problem["loc"]) or "(event)", "problem": problem["msg"]}
        for problem in error.errors(include_input=False, include_url=False)[:MAX_REPORTED_PROBLEMS]
    ]


def parse_event(event: Any, model: type[ModelT]) -> ModelT:
    """Validate `event` as `model`; on failure log the fields, count it, and raise InvalidEventError."""
    try:
        return model.model_validate(event)
    except ValidationError as error:
        problems = describe_validation_error(error)
        event_id = event.get("id") if isinstance(event, dict) else None
        logger.error(
            "invalid event",
            extra={"model": model.__name__, "event_id": str(event_id)[:100], "problems": problems},
        )
        metrics.add_metric(name="InvalidEvents", unit="Count", value=1)
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidEventError(f"invalid {model.__name__}: {summary}") from None
