"""The push guard's hand-off of revert requests to the tag reverter: one SQS message per request.

The message names the tag and the history entry that asked; the reverter reads what to put back from that
entry, so a message can never make it write content the ledger did not ask for.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tagwarden.domain.revert import RevertRequest
from tagwarden.ports import RevertHandoffError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def request_body(request: RevertRequest) -> str:
    """The message body (the reverter's `events.revert.RevertRequestMessage`)."""
    tag = request.tag
    return json.dumps(
        {
            "registry": tag.image.registry,
            "repository": tag.image.repository,
            "tag": tag.tag,
            "entry_key": request.entry_key,
        }
    )


class SqsRevertRequests:
    """Sends each request to the reverter's queue (retried by the client; a failure fails the event)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def request(self, request: RevertRequest) -> None:
        """SendMessage; any error becomes RevertHandoffError, so Lambda retries the event (which hands it again)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=request_body(request))
        except (ClientError, BotoCoreError) as error:
            raise RevertHandoffError(f"SendMessage of a revert request failed: {error}") from error
