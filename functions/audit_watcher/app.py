"""Audit watcher: EKS audit logs (CloudWatch Logs subscription) -> deployment checks against the ledger."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from tagwarden.config import AuditWatcherConfig
from tagwarden.events.audit import read_batch
from tagwarden.events.parsing import parse_event
from tagwarden.observability import logger, metrics
from tagwarden.services.wiring import build_audit_watcher

# Created at import, as Powertools documents it: deferring it to the first invocation made cold start no faster.
tracer = Tracer(service="tagwarden")

# Built once per container, at import (the configuration read and checked then); its clients are reused.
AUDIT_WATCHER = build_audit_watcher(AuditWatcherConfig.from_env())


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    """Check one CloudWatch Logs delivery of audit events."""
    return AUDIT_WATCHER.handle(read_batch(parse_event(event, CloudWatchLogsModel)))
