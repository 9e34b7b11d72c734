"""Scan recorder: ECR basic and Inspector scan events (EventBridge) -> ledger of scanned digests, alerts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tagwarden.config import ScanRecorderConfig
from tagwarden.events.parsing import parse_event
from tagwarden.events.scans import ScanEvent
from tagwarden.observability import logger, metrics
from tagwarden.services.wiring import build_scan_recorder

# Created at import, as Powertools documents it: deferring it to the first invocation made cold start no faster.
tracer = Tracer(service="tagwarden")

# Built once per container, at import (the configuration read and checked then); its clients are reused.
SCAN_RECORDER = build_scan_recorder(ScanRecorderConfig.from_env())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    """Record one completed scan."""
    return SCAN_RECORDER.handle(parse_event(event, ScanEvent).to_fact()).as_dict()
