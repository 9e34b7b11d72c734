"""Tag reverter (opt-in): revert requests from the push guard (SQS) -> overwritten protected tags put back
in ECR, and the overwrite's alerts published with the outcome."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tagwarden.config import TagReverterConfig
from tagwarden.events.parsing import parse_event
from tagwarden.events.revert import RevertRequestRecord
from tagwarden.observability import logger, metrics
from tagwarden.services.wiring import build_tag_reverter

tracer = Tracer(service="tagwarden")

# Built once per container, at import (the configuration read and checked then); its clients are reused.
TAG_REVERTER = build_tag_reverter(TagReverterConfig.from_env())
# A record that fails (bad body, registry or ledger unavailable) is reported alone and delivered again;
# after the queue's maxReceiveCount it goes to the dead-letter queue. The others are settled.
# A batch whose every record failed is reported like any other (not raised): the invocation itself worked.
PROCESSOR = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def settle(record: SQSRecord) -> None:
    """Settle one revert request."""
    message = parse_event(record.raw_event, RevertRequestRecord)
    TAG_REVERTER.handle(message.to_request(), message.attempt)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Settle a batch of revert requests; report the failed ones (ReportBatchItemFailures)."""
    return process_partial_response(event=event, record_handler=settle, processor=PROCESSOR, context=context)
