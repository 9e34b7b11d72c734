"""Alerts published to the chat topic as Amazon Q Developer in chat applications custom notifications.

Amazon Q Developer (formerly AWS Chatbot) renders a message on a topic mapped to a Slack or Microsoft Teams
channel when the message is a custom notification: `version` "1.0", `source` "custom", and `content` with
`textType` "client-markdown", `title`, `description`, `nextSteps`, `keywords`; optional `id` and `metadata`
(`threadId`, `summary`, `eventType`, `relatedResources`, `additionalContext`). Other messages are dropped
without an error. Format: https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html
The card's text (title, description, steps) comes from `domain.alert_text.chat_card`, with every outside
name inert; the metadata repeats only values Tagwarden makes (ids, types, severities).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tagwarden.domain.alert_text import NO_STACK, CommandScope, chat_card
from tagwarden.domain.alerts import Alert
from tagwarden.ports import AlertDeliveryError, AlertRejectedError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def chat_notification(alert: Alert, scope: CommandScope = NO_STACK) -> dict[str, Any]:
    """The alert as a custom notification (the documented event schema, version 1.0)."""
    card = chat_card(alert, scope)
    return {
        "version": "1.0",
        "source": "custom",
        "id": alert.alert_id,
        "content": {
            "textType": "client-markdown",
            "title": card.title,
            "description": card.description,
            "nextSteps": list(card.next_steps),
            "keywords": list(card.keywords),
        },
        "metadata": {
            # A redelivered alert lands in the thread of its first post, not as a new top-level message.
            "threadId": alert.alert_id,
            "summary": f"{alert.severity} {alert.type}",
            "eventType": alert.type.value,
            "additionalContext": {
                "alert_id": alert.alert_id,
                "severity": alert.severity.value,
                "schema": alert.schema_,
            },
        },
    }


class ChatAlertPublisher:
    """Publishes each alert to the chat topic, which Amazon Q Developer maps to chat channels."""

    def __init__(self, client: SNSClient, topic_arn: str, scope: CommandScope = NO_STACK) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._scope = scope

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Publish one alert's custom notification, with the same filterable attributes as the alerts topic.
        (One destination, no sink names: `skip` is the fan-out's.)"""
        from tagwarden.adapters.aws_clients import error_code, publish_errors
        from tagwarden.adapters.sns_publisher import PERMANENT_SNS_ERRORS, message_attributes

        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                Message=json.dumps(chat_notification(alert, self._scope), ensure_ascii=False),
                MessageAttributes=message_attributes(alert),
            )
        except publish_errors() as error:
            if error_code(error) in PERMANENT_SNS_ERRORS:
                raise AlertRejectedError(f"the chat topic refused alert {alert.alert_id}: {error}") from error
            raise AlertDeliveryError(f"alert {alert.alert_id} was not posted to chat: {error}") from error
