"""Trail watcher: ECR API calls from CloudTrail (EventBridge) -> repository settings and who pushed, in the ledger;
alerts when a repository's settings let a protected tag be overwritten."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tagwarden.config import TrailWatcherConfig
from tagwarden.events.cloudtrail import EcrApiCallEvent
from tagwarden.events.parsing import parse_event
from tagwarden.observability import logger, metrics
from tagwarden.services.wiring import build_trail_watcher

# Created at import, as in the other functions (cold start measured the same either way).
tracer = Tracer(service="tagwarden")

# Built once per container, at import (the configuration read and checked then); its clients are reused.
TRAIL_WATCHER = build_trail_watcher(TrailWatcherConfig.from_env())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    """Record one ECR API call: a tag mutability setting, or who pushed or deleted a tag."""
    return TRAIL_WATCHER.handle(parse_event(event, EcrApiCallEvent).to_fact()).as_dict()
