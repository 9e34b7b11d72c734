"""Alerts published to the SNS alerts topic as schema v1 JSON, with attributes for subscription filters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagwarden.domain.alerts import Alert
from tagwarden.ports import AlertDeliveryError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SnsAlertPublisher:
    """Publishes each alert as one SNS message."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, alert: Alert) -> None:
        """Publish one alert; subscribers filter on the `type`, `severity` and `repository` attributes."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                Subject=alert.subject,
                Message=alert.to_json(),
                MessageAttributes={
                    "type": {"DataType": "String", "StringValue": alert.type.value},
                    "severity": {"DataType": "String", "StringValue": alert.severity.value},
                    "repository": {"DataType": "String", "StringValue": alert.repository},
                    "alert_id": {"DataType": "String", "StringValue": alert.alert_id},
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise AlertDeliveryError(f"alert {alert.alert_id} was not published: {error}") from error
