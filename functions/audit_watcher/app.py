"""Audit watcher: EKS audit logs -> deployment checks against the ledger.

Two deliveries: the stack's own clusters' subscription filters invoke the function directly (CloudWatch Logs
subscription event); member accounts' clusters reach it through the organization's Logs destination and its
Kinesis stream (one record per subscription delivery, checked one by one: a bad record fails alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models.kinesis import KinesisDataStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tagwarden.config import AuditWatcherConfig
from tagwarden.events.audit import SubscriptionDelivery, read_batch, read_kinesis_record
from tagwarden.events.parsing import parse_event
from tagwarden.observability import logger, metrics
from tagwarden.services.wiring import build_audit_watcher, home_of

# Created at import, as Powertools documents it: deferring it to the first invocation made cold start no faster.
tracer = Tracer(service="tagwarden")

# Built once per container, at import (the configuration read and checked then); its clients are reused.
CONFIG = AuditWatcherConfig.from_env()
AUDIT_WATCHER = build_audit_watcher(CONFIG)
HOME = home_of(CONFIG)
KINESIS_BATCH = BatchProcessor(event_type=EventType.KinesisDataStreams, model=KinesisDataStreamRecord)


def check_record(record: KinesisDataStreamRecord) -> dict[str, object]:
    """Check the subscription delivery one Kinesis record carries."""
    return AUDIT_WATCHER.handle(read_kinesis_record(record, HOME))


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, object]:
    """Check one CloudWatch Logs delivery of audit events, or a Kinesis batch of them (partial batch response)."""
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=check_record, processor=KINESIS_BATCH, context=context
        )
    return AUDIT_WATCHER.handle(read_batch(parse_event(event, SubscriptionDelivery), HOME))
