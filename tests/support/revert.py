"""Opt-in revert on moto: ECR repositories holding real manifests, the reverter's queue, and the SQS events
Lambda's event source mapping makes of its messages (shape: `events/tag_reverter/revert_request.json`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from tests.support.events import ecr_image_action
from tests.support.handlers import FakeLambdaContext, load_function_module
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from types import ModuleType

    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_sqs import SQSClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# The message attributes Lambda puts on each SQS record (AWS Lambda Developer Guide, SQS example event).
RECORD_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
# moto's own account: its ECR answers DescribeRepositories only for the registry id it holds.
ACCOUNT = "123456789012"


def manifest(label: str) -> str:
    """An OCI image manifest whose content depends on `label` (different labels, different digests)."""
    blob = "sha256:" + hashlib.sha256(label.encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob, "size": 1471},
            "layers": [],
        }
    )


def digest_of(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Registry:
    """moto's ECR, and the Image Action events ECR emits for what the tests push."""

    ecr: ECRClient
    times: list[str] = field(default_factory=list)

    def push(self, repository: str, tag: str, body: str, time: str, event_id: str | None = None) -> dict[str, Any]:
        """PutImage of the manifest under the tag; the ECR Image Action PUSH event for it."""
        self.ecr.put_image(
            repositoryName=repository, imageManifest=body, imageManifestMediaType=OCI_MANIFEST, imageTag=tag,
            imageDigest=digest_of(body),
        )  # fmt: skip
        return ecr_image_action(
            tag=tag, digest=digest_of(body), time=time, repository=repository, event_id=event_id, account=ACCOUNT
        )

    def tag_digest(self, repository: str, tag: str) -> str | None:
        found = self.ecr.batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": tag}], acceptedMediaTypes=[OCI_MANIFEST]
        )["images"]
        return found[0]["imageId"]["imageDigest"] if found else None


@dataclass
class Reverter:
    """The reverter's queue (with its dead-letter queue) and its real handler, driven as Lambda's SQS event
    source mapping drives it: receive, invoke with the batch, delete what did not fail."""

    sqs: SQSClient
    queue_url: str
    dead_letter_url: str
    module: ModuleType
    context: FakeLambdaContext
    put_images: int = 0
    delivered: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    def run(self) -> int:
        """Deliver every visible message once (batches of 10); how many were delivered."""
        delivered = 0
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
            ).get("Messages", [])
            if not messages:
                return delivered
            delivered += len(messages)
            self.delivered += len(messages)
            result = self.module.lambda_handler(sqs_event(messages, self.queue_url), self.context)
            self.results.append(result)
            failed = {failure["itemIdentifier"] for failure in result["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if failed:
                return delivered

    def pending(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def count_put_images(self, *_: Any, **__: Any) -> None:
        self.put_images += 1


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_url: str) -> dict[str, Any]:
    """The Lambda event for received messages, as the SQS event source mapping builds it."""
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rsplit('/', 1)[-1]}"
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    name: message["Attributes"][name]
                    for name in (
                        "ApproximateReceiveCount",
                        "SentTimestamp",
                        "SenderId",
                        "ApproximateFirstReceiveTimestamp",
                    )
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


def revert_queues(sqs: SQSClient, max_attempts: int) -> tuple[str, str]:
    """The reverter's queue and its dead-letter queue (after `max_attempts` receives), as the template makes them."""
    dead_letter_url = sqs.create_queue(QueueName="tagwarden-revert-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(max_attempts)})
    queue_url = sqs.create_queue(QueueName="tagwarden-revert-requests", Attributes={"RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    return queue_url, dead_letter_url


def start_reverter(
    stack: Stack,
    context: FakeLambdaContext,
    prefixes: str = "shop/",
    max_attempts: int = 5,
    reverter_account: str = ACCOUNT,
) -> tuple[Reverter, dict[str, str]]:
    """The reverter cold-started on the stack; and the environment that turns revert on in the push guard.
    `reverter_account`: the account the reverter believes is the stack's (another: a mis-deployed reverter)."""
    queue_url, dead_letter_url = revert_queues(stack.sqs, max_attempts)
    # The stack's own registry (the template sets the account; Lambda sets AWS_REGION): moto's account here.
    home = {"TAGWARDEN_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION}
    environment = {
        **stack.environment(),
        **home,
        "TAGWARDEN_ACCOUNT_ID": reverter_account,
        "REVERT_REPOSITORY_PREFIXES": prefixes,
        "REVERT_MAX_ATTEMPTS": str(max_attempts),
    }
    module = load_function_module("tag_reverter", environment)
    reverter = Reverter(stack.sqs, queue_url, dead_letter_url, module, context)
    client = module.TAG_REVERTER._registry._client
    client.meta.events.register("before-call.ecr.PutImage", reverter.count_put_images)
    push_guard_environment = {
        **stack.environment(),
        **home,
        "REVERT_PROTECTED_TAGS": "true",
        "REVERT_REPOSITORY_PREFIXES": prefixes,
        "REVERT_QUEUE_URL": queue_url,
    }
    return reverter, push_guard_environment


def ecr_client() -> ECRClient:
    return boto3.client("ecr", region_name=REGION)
