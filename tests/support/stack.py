"""The stack's resources on an embedded AWS (moto) or DynamoDB Local, with an SQS 'security inbox'."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from tagwarden.domain.alerts import Alert

from tests.support.template import create_ledger_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

REGION = "eu-west-1"


@dataclass
class ReceivedAlert:
    """An alert as a subscriber receives it: the SNS envelope's subject, attributes and message."""

    subject: str
    attributes: dict[str, str]
    alert: Alert
    raw: dict[str, Any]


@dataclass
class Stack:
    """Ledger table, alerts topic and an inbox queue subscribed to the topic."""

    dynamodb: DynamoDBClient
    sns: SNSClient
    sqs: SQSClient
    table_name: str
    topic_arn: str
    inbox_url: str

    def environment(self) -> dict[str, str]:
        """The environment variables the template gives every function."""
        return {"LEDGER_TABLE_NAME": self.table_name, "ALERTS_TOPIC_ARN": self.topic_arn}

    def received_alerts(self) -> list[ReceivedAlert]:
        """Drain the inbox: every alert published since the last call, in arrival order."""
        received: list[ReceivedAlert] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not batch:
                return received
            for message in batch:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                raw = json.loads(envelope["Message"])
                received.append(ReceivedAlert(envelope.get("Subject", ""), attributes, Alert.model_validate(raw), raw))
                self.sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def items(self) -> list[dict[str, Any]]:
        """Every ledger item (small test tables only)."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True)
        return [item for page in pages for item in page.get("Items", [])]


def create_stack(name: str = "tagwarden") -> Stack:
    """Create the resources, named after `name`: inside `mock_aws()`, or wherever AWS_ENDPOINT_URL_* point."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    table_name = f"{name}-ledger"
    create_ledger_table(dynamodb, table_name)
    topic_arn = sns.create_topic(Name=f"{name}-alerts")["TopicArn"]
    inbox_url = sqs.create_queue(QueueName=f"{name}-security-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    return Stack(dynamodb, sns, sqs, table_name, topic_arn, inbox_url)
