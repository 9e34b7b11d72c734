"""Alerts published to the SNS alerts topic: schema v1 JSON for machines, readable text for e-mail.

One publish with `MessageStructure="json"`: SNS hands each subscription the value under its protocol's key,
or `default` when there is none. `default` is the schema v1 JSON, exactly as before this structure existed,
so SQS, Lambda, HTTP/S, Firehose and e-mail-json subscribers (none of which has a key here) receive it
unchanged; `email` is the text of `domain.alert_text.email_text`; `sms` is the subject line (a text message
holds 140 bytes: JSON would be cut to noise). Listing the machine protocols' keys too would only repeat the
JSON and eat into the size limit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tagwarden.adapters.aws_clients import publish_errors
from tagwarden.domain.alert_text import NO_STACK, CommandScope, email_subject, email_text, truncate_utf8
from tagwarden.domain.alerts import Alert
from tagwarden.ports import AlertDeliveryError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

# SNS accepts messages up to 256 KiB (262,144 bytes), message attributes included.
SNS_MESSAGE_LIMIT = 262_144
TOO_LARGE = "This alert is too large for an e-mail: its JSON subscribers (queues, functions) receive it whole."


# SNS errors no retry can fix: the topic is gone, the role may not publish, the topic's KMS key is disabled,
# deleted or not usable by the role, the request is invalid. On an optional sink (the chat topic) they are
# a refusal (counted, alarmed), not a reason to retry the event and page the alerts topic again.
PERMANENT_SNS_ERRORS = frozenset(
    {
        "AuthorizationError",
        "NotFound",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidSecurity",
        "ValidationError",
        "KMSAccessDenied",
        "KMSDisabled",
        "KMSInvalidState",
        "KMSNotFound",
        "KMSOptInRequired",
    }
)


def message_attributes(alert: Alert) -> dict[str, MessageAttributeValueTypeDef]:
    """The attributes subscription filter policies match on (documented in the README's schema section)."""
    return {
        "type": {"DataType": "String", "StringValue": alert.type.value},
        "severity": {"DataType": "String", "StringValue": alert.severity.value},
        "repository": {"DataType": "String", "StringValue": alert.repository},
        "alert_id": {"DataType": "String", "StringValue": alert.alert_id},
    }


def structured_message(alert: Alert, limit: int = SNS_MESSAGE_LIMIT, scope: CommandScope = NO_STACK) -> str:
    """The `MessageStructure=json` body: `default` the schema v1 JSON, `email` the text, `sms` the subject,
    within `limit` bytes together with the attributes. Only the text is ever cut; the JSON subscribers parse
    stays whole."""
    attributes = message_attributes(alert)
    overhead = sum(
        len(name) + len(str(value.get("StringValue", "")).encode()) + 16 for name, value in attributes.items()
    )
    budget = limit - overhead
    text = email_text(alert, scope=scope)
    body = _structure(alert, text)
    while len(body.encode()) > budget:
        # JSON escaping makes the text longer in the body than on its own: cut a little more than the excess.
        room = len(text.encode()) - (len(body.encode()) - budget) - 64
        if room <= len(TOO_LARGE.encode()):
            return _structure(alert, TOO_LARGE)
        text = truncate_utf8(text, room)
        body = _structure(alert, text)
    return body


def _structure(alert: Alert, text: str) -> str:
    # ensure_ascii=False: UTF-8 costs a non-ASCII character 2 to 4 bytes, \u escapes 6 to 12.
    return json.dumps({"default": alert.to_json(), "email": text, "sms": email_subject(alert)}, ensure_ascii=False)


class SnsAlertPublisher:
    """Publishes each alert as one SNS message; its commands name the stack in `scope`."""

    def __init__(self, client: SNSClient, topic_arn: str, scope: CommandScope = NO_STACK) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self._scope = scope

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Publish one alert; subscribers filter on the `type`, `severity` and `repository` attributes. (One
        destination, no sink names: `skip` is the fan-out's.)"""
        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                Subject=email_subject(alert),
                Message=structured_message(alert, scope=self._scope),
                MessageStructure="json",
                MessageAttributes=message_attributes(alert),
            )
        except publish_errors() as error:
            # Even a permanent error is retried here: the alerts topic is the one sink no alert may skip, so
            # the event goes on to its retries and dead-letter queue, where operations see it.
            raise AlertDeliveryError(f"alert {alert.alert_id} was not published: {error}") from error
