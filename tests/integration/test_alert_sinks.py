"""Alerts through the real push guard handler to every sink on moto: the alerts topic (schema v1 JSON for
queues, raw and wrapped; text for e-mail), the chat topic (custom notifications) and Security Hub (findings)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema  # type: ignore[import-untyped]
import pytest
from tagwarden.adapters.securityhub_publisher import SecurityHubAlertPublisher, finding_id
from tagwarden.adapters.sns_publisher import SnsAlertPublisher
from tagwarden.domain.alert_text import email_text
from tagwarden.domain.alerts import Alert, AlertType
from tagwarden.domain.severity import Severity
from tagwarden.ports import AlertDeliveryError

from tests.conftest import cold_start
from tests.support.alerts import sample_alerts
from tests.support.events import ecr_image_action
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_securityhub import SecurityHubClient
    from mypy_boto3_sqs import SQSClient

SCHEMA = json.loads((Path(__file__).parents[1] / "support" / "schemas" / "chat_custom_notification.json").read_text())
ACCOUNT = "123456789012"  # moto's
PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
A, B = ("sha256:" + c * 64 for c in "ab")
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"


def subscribe_queue(stack: Stack, topic_arn: str, name: str, *, raw: bool) -> str:
    url = stack.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"RawMessageDelivery": "true"} if raw else {}
    stack.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def drain(sqs: SQSClient, url: str) -> list[str]:
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


class Sinks:
    """The alerts topic's wrapped inbox (the stack's) and a raw one, the chat topic's queue, Security Hub."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.raw_inbox = subscribe_queue(stack, stack.topic_arn, "raw-inbox", raw=True)
        self.chat_topic_arn = stack.sns.create_topic(Name="tagwarden-chat")["TopicArn"]
        self.chat_inbox = subscribe_queue(stack, self.chat_topic_arn, "chat-inbox", raw=True)
        self.securityhub: SecurityHubClient = boto3.client("securityhub", region_name=REGION)
        self.securityhub.enable_security_hub()

    def environment(self, **overrides: str) -> dict[str, str]:
        return {
            **self.stack.environment(),
            "CHAT_TOPIC_ARN": self.chat_topic_arn,
            "SECURITY_HUB_PRODUCT_ARN": PRODUCT_ARN,
            # As the template sets them (Globals, and Lambda's own AWS_REGION).
            "TAGWARDEN_STACK_NAME": "tagwarden-prod",
            "AWS_REGION": REGION,
            **overrides,
        }

    def findings(self) -> list[dict[str, Any]]:
        return list(self.securityhub.get_findings()["Findings"])  # type: ignore[arg-type]


@pytest.fixture
def sinks(stack: Stack) -> Sinks:
    return Sinks(stack)


@pytest.fixture
def push_guard_with_sinks(sinks: Sinks, lambda_context: FakeLambdaContext) -> Handler:
    return cold_start("push_guard", sinks.environment(), lambda_context)


def overwrite(push_guard: Handler) -> Any:
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))
    return push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))


def test_one_alert_reaches_every_sink_in_its_format(sinks: Sinks, push_guard_with_sinks: Handler) -> None:
    result = overwrite(push_guard_with_sinks)

    (alert_id,) = result["alerts"]
    # The alerts topic, wrapped delivery: the envelope's Message is the schema v1 JSON, unchanged.
    (received,) = sinks.stack.received_alerts()
    alert = received.alert
    assert alert.alert_id == alert_id and alert.type is AlertType.TAG_OVERWRITTEN
    assert json.loads(alert.to_json()) == received.raw
    assert received.attributes["severity"] == alert.severity.value
    assert received.subject == "[HIGH] TAG_OVERWRITTEN shop/api:v1.4.2"  # a protected tag
    # Raw delivery: the body is the schema v1 JSON itself, exactly what `default` holds.
    (raw_body,) = drain(sinks.stack.sqs, sinks.raw_inbox)
    assert raw_body == alert.to_json()
    # Chat: a custom notification in the documented shape.
    (chat_body,) = drain(sinks.stack.sqs, sinks.chat_inbox)
    notification = json.loads(chat_body)
    jsonschema.validate(notification, SCHEMA)
    assert notification["id"] == alert_id and notification["content"]["title"].startswith("HIGH Protected tag")
    # The commands name the function's stack, so they work as printed.
    history = f"`tagwarden history {REGISTRY}/shop/api:v1.4.2 --stack-name tagwarden-prod --region {REGION}`"
    assert history in notification["content"]["nextSteps"]
    # Security Hub: one finding for the alert.
    (finding,) = sinks.findings()
    assert finding["Id"] == finding_id(PRODUCT_ARN, alert_id)
    assert finding["ProductFields"]["tagwarden/AlertId"] == alert_id
    assert finding["Resources"][0]["Id"] == f"arn:aws:ecr:eu-west-1:111122223333:repository/shop/api/{B}"
    assert finding["ProductFields"]["tagwarden/LookCloser1"] == history.strip("`")


def test_a_duplicate_event_adds_nothing_anywhere(sinks: Sinks, push_guard_with_sinks: Handler) -> None:
    overwrite(push_guard_with_sinks)
    sinks.stack.received_alerts()
    drain(sinks.stack.sqs, sinks.chat_inbox)

    again = push_guard_with_sinks(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    assert again["alerts"] == []
    assert sinks.stack.received_alerts() == []
    assert drain(sinks.stack.sqs, sinks.chat_inbox) == []
    assert len(sinks.findings()) == 1


class ChatOutage:
    """The chat topic failing as SNS fails (an error response to `Publish`), below the adapter: `code` while set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, sinks: Sinks) -> None:
        from botocore.client import BaseClient
        from botocore.exceptions import ClientError

        self.code: str | None = None
        real = BaseClient._make_api_call  # type: ignore[attr-defined]
        outage = self

        def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if operation == "Publish" and params.get("TopicArn") == sinks.chat_topic_arn and outage.code:
                status = 500 if outage.code == "InternalError" else 400
                error: Any = {
                    "Error": {"Code": outage.code, "Message": outage.code},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                }
                raise ClientError(error, operation)
            return real(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)


def test_a_sink_that_fails_makes_the_retry_publish_only_to_the_sinks_that_failed(
    sinks: Sinks, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = ChatOutage(monkeypatch, sinks)
    push_guard = cold_start("push_guard", sinks.environment(), lambda_context)
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))
    outage.code = "InternalError"  # a passing outage: worth retrying

    with pytest.raises(AlertDeliveryError, match="chat-topic"):
        push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    (first,) = sinks.stack.received_alerts()
    assert len(sinks.findings()) == 1
    assert drain(sinks.stack.sqs, sinks.chat_inbox) == []
    # Lambda retries the event while the outage lasts, then once it is over: only the chat topic is tried
    # again; the alerts topic's subscribers (the pager) are not paged again, Security Hub not re-imported.
    with pytest.raises(AlertDeliveryError, match="chat-topic"):
        push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))
    outage.code = None
    retried = push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    assert retried["alerts"] == [first.alert.alert_id]
    assert sinks.stack.received_alerts() == []
    (chat_body,) = drain(sinks.stack.sqs, sinks.chat_inbox)
    assert json.loads(chat_body)["id"] == first.alert.alert_id
    assert [finding["Id"] for finding in sinks.findings()] == [finding_id(PRODUCT_ARN, first.alert.alert_id)]
    # And now it is delivered: a third delivery publishes nothing anywhere.
    push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))
    assert sinks.stack.received_alerts() == [] and drain(sinks.stack.sqs, sinks.chat_inbox) == []


@pytest.mark.parametrize(
    "code", ["KMSAccessDenied", "KMSDisabled", "AuthorizationError", "NotFound", "InvalidParameter"]
)
def test_a_chat_topic_refusing_for_good_does_not_hold_the_alert_or_page_again(
    sinks: Sinks, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    outage = ChatOutage(monkeypatch, sinks)
    push_guard = cold_start("push_guard", sinks.environment(), lambda_context)
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))
    outage.code = code  # the topic's key disabled, the role's permission removed, the topic deleted...

    result = push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    (alert_id,) = result["alerts"]  # delivered: no error, so no retry and no dead-letter queue
    assert [received.alert.alert_id for received in sinks.stack.received_alerts()] == [alert_id]
    assert len(sinks.findings()) == 1
    push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))
    assert sinks.stack.received_alerts() == []


def test_a_topic_deleted_by_mistake_is_a_refusal_through_real_sns(
    sinks: Sinks, lambda_context: FakeLambdaContext
) -> None:
    sinks.stack.sns.delete_topic(TopicArn=sinks.chat_topic_arn)
    push_guard = cold_start("push_guard", sinks.environment(), lambda_context)
    push_guard(ecr_image_action(tag="v1.4.2", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))

    result = push_guard(ecr_image_action(tag="v1.4.2", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))

    assert [received.alert.alert_id for received in sinks.stack.received_alerts()] == result["alerts"]


def test_reimporting_an_alert_updates_its_one_finding_and_keeps_the_users_resolution(sinks: Sinks) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 11, 30, 5, 0, tzinfo=UTC)]
    publisher = SecurityHubAlertPublisher(sinks.securityhub, PRODUCT_ARN, clock=lambda: now[0])
    alerts = sample_alerts()
    for alert in alerts.values():
        publisher.publish(alert)
    moved = alerts[AlertType.TAG_MOVED_AFTER_SCAN]
    # A person resolves the finding in the console (BatchUpdateFindings, which moto does not implement: set on
    # its stored finding directly, as Security Hub would).
    from moto.securityhub.models import securityhub_backends

    (stored,) = [
        f for f in securityhub_backends[ACCOUNT][REGION].findings if f.id == finding_id(PRODUCT_ARN, moved.alert_id)
    ]
    stored.data["Workflow"] = {"Status": "RESOLVED"}

    now[0] += timedelta(minutes=3)
    publisher.publish(moved)  # a redelivery of the same alert

    findings = {finding["Id"]: finding for finding in sinks.findings()}
    assert len(findings) == len(AlertType)
    again = findings[finding_id(PRODUCT_ARN, moved.alert_id)]
    assert again["Workflow"] == {"Status": "RESOLVED"}  # we never send Workflow, so nothing resets it
    assert again["RecordState"] == "ACTIVE"  # never ARCHIVED, so never ARCHIVED -> ACTIVE (which reopens)
    # Created when the alert was made; updated by the later import (newer, so Security Hub applies it).
    assert (again["CreatedAt"], again["UpdatedAt"]) == ("2026-11-30T04:12:09Z", "2026-11-30T05:03:00Z")


def test_the_email_protocol_gets_the_text_and_every_other_protocol_the_json() -> None:
    alert = sample_alerts()[AlertType.DEPLOYED_DIGEST_MISMATCH]
    published: list[dict[str, Any]] = []

    class RecordingClient:
        def publish(self, **request: Any) -> dict[str, str]:
            published.append(request)
            return {"MessageId": "m-1"}

    SnsAlertPublisher(RecordingClient(), "arn:aws:sns:eu-west-1:111122223333:alerts").publish(alert)  # type: ignore[arg-type]

    (request,) = published
    assert request["MessageStructure"] == "json"
    # SMS gets the subject line (a text message holds 140 bytes; the JSON would be cut to noise).
    assert json.loads(request["Message"]) == {
        "default": alert.to_json(),
        "email": email_text(alert),
        "sms": alert.subject,
    }
    assert Alert.model_validate_json(json.loads(request["Message"])["default"]) == alert
    assert request["Subject"] == alert.subject
    assert set(request["MessageAttributes"]) == {"type", "severity", "repository", "alert_id"}


def readme_subscription_attributes() -> list[dict[str, str]]:
    """The `--attributes` of the README's `aws sns subscribe` examples, in order."""
    import re

    from tests.support.template import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    return [json.loads(found) for found in re.findall(r"--attributes '([^']+)'", readme)]


def test_the_readmes_filter_policies_send_high_and_critical_to_the_pager_and_everything_to_the_tickets(
    stack: Stack,
) -> None:
    pager, tickets, team = readme_subscription_attributes()
    queues = {}
    for name, attributes in (("pager", pager), ("tickets", tickets), ("team", team)):
        url = stack.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # SQS stands in for the pager's HTTPS endpoint and the team's e-mail: the filter is the same.
        stack.sns.subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        queues[name] = url
    publisher = SnsAlertPublisher(stack.sns, stack.topic_arn)
    alerts = sample_alerts()
    low = alerts[AlertType.TAG_OVERWRITTEN].model_copy(update={"severity": Severity.LOW, "alert_id": "tw-low"})
    other_team = alerts[AlertType.TAG_MOVED_AFTER_SCAN].model_copy(
        update={"repository": "billing/api", "alert_id": "tw-b"}
    )
    for alert in (*alerts.values(), low, other_team):
        publisher.publish(alert)

    def ids(queue: str) -> set[str]:
        bodies = drain(stack.sqs, queues[queue])
        return {
            Alert.model_validate_json(b if queue == "tickets" else json.loads(b)["Message"]).alert_id for b in bodies
        }

    everything = {alert.alert_id for alert in (*alerts.values(), low, other_team)}
    assert ids("tickets") == everything  # raw delivery: the body is the schema v1 JSON
    assert ids("pager") == everything - {"tw-low"}  # the samples are HIGH or CRITICAL
    shop_moves = {alerts[AlertType.TAG_OVERWRITTEN].alert_id, alerts[AlertType.TAG_MOVED_AFTER_SCAN].alert_id}
    assert ids("team") == shop_moves | {"tw-low"}  # shop/ tag moves of any severity, not billing/'s


def test_a_deployment_finding_names_cluster_and_workload_and_a_hostile_deployer_stays_inert(
    sinks: Sinks, lambda_context: FakeLambdaContext
) -> None:
    from tests.support.audit import ECR, audit_line, envelope, with_images

    audit_watcher = cold_start("audit_watcher", sinks.environment(), lambda_context)
    line = with_images(audit_line("deployment_create.json"), f"{ECR}/shop/api:1.4.0")
    hostile = "eve <!here> @channel [login](https://evil.example)\n*Severity:* INFO"
    line["user"]["username"] = hostile

    result = audit_watcher(envelope([line]))

    (alert_id,) = result["alerts"]
    (received,) = sinks.stack.received_alerts()
    assert received.alert.kubernetes is not None and received.alert.kubernetes.user == hostile  # JSON: as it is
    (chat_body,) = drain(sinks.stack.sqs, sinks.chat_inbox)
    notification = json.loads(chat_body)
    jsonschema.validate(notification, SCHEMA)
    description = notification["content"]["description"]
    assert "<!here>" not in description and "@channel" not in description and "https://" not in description
    # One code span; look-alikes for < > @ (U+2039, U+203A, U+FF20) and for what Teams formats ([ ] * as
    # U+FF3B, U+FF3D, U+2217), the scheme and the domain defanged, the newline a space.
    lookalike = (
        "eve \u2039!here\u203a \uff20channel \uff3blogin\uff3d(https\uff3b:\uff3d//evil\uff3b.\uff3dexample)"
        " \u2217Severity:\u2217 INFO"
    )
    assert f"*Deployed by:* `{lookalike}`" in description
    (finding,) = sinks.findings()
    assert finding["ProductFields"]["tagwarden/AlertId"] == alert_id
    assert [resource["Type"] for resource in finding["Resources"]] == ["AwsEcrContainerImage", "AwsEksCluster", "Other"]
    assert finding["Resources"][1]["Id"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod-eks"
    assert finding["Resources"][2]["Id"].startswith("kubernetes/prod-eks/shop/")


# --- The printed commands work as printed ------------------------------------------------------------------


def aws_cli_command_is_valid(argv: list[str]) -> None:
    """An `aws ecr <operation> --option value ...` line names a real ECR operation and only its input members
    (plus the global --region), as the AWS CLI maps them (kebab-case of the member names)."""
    import botocore.session

    assert argv[:2] == ["aws", "ecr"], argv
    model = botocore.session.get_session().get_service_model("ecr")
    operations = {name: model.operation_model(name) for name in model.operation_names}
    by_cli_name = {re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower(): op for name, op in operations.items()}
    operation = by_cli_name[argv[2]]
    assert operation.input_shape is not None
    members = {
        re.sub(r"(?<!^)(?=[A-Z])", "-", member).lower(): shape
        for member, shape in operation.input_shape.members.items()
    }
    options = argv[3:]
    assert len(options) % 2 == 0, argv
    for option, value in zip(options[::2], options[1::2], strict=True):
        assert option.startswith("--") and value and not value.startswith("--"), argv
        if option == "--region":
            continue
        assert option[2:] in members, (argv[2], option)
    for required in operation.input_shape.required_members:
        assert "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", required).lower() in options, (argv, required)


def test_every_printed_command_runs_as_printed_against_the_stack(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    import shlex

    from tagwarden.cli.main import app
    from tagwarden.domain.alert_text import CommandScope, look_closer_commands
    from typer.testing import CliRunner

    from tests.integration.test_cli import create_cloudformation_stack
    from tests.support.alerts import PUSHED, SCANNED
    from tests.support.events import ecr_scan

    create_cloudformation_stack(
        "tagwarden-prod", {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn}
    )
    push_guard(ecr_image_action(tag="v1.4.2", digest=SCANNED, time="2026-11-30T04:00:00Z", event_id="e-1"))
    scan_recorder(ecr_scan(digest=SCANNED, tags=["v1.4.2"], time="2026-11-30T04:01:00Z"))
    push_guard(ecr_image_action(tag="v1.4.2", digest=PUSHED, time="2026-11-30T04:12:07Z", event_id="e-2"))
    alerts = list(sample_alerts().values())
    template = sample_alerts()[AlertType.TAG_PROTECTION_WEAKENED].model_copy(
        update={"repository": "ROOT", "summary": "Repository creation template ROOT (applies ...) now lets ..."}
    )
    never_seen = sample_alerts()[AlertType.UNSCANNED_IMAGE_DEPLOYED].model_copy(
        update={"tag": "never-pushed", "current_digest": None}
    )
    scope = CommandScope("tagwarden-prod", REGION)
    ran: list[str] = []
    for alert in [*alerts, template, never_seen]:
        commands = look_closer_commands(alert, scope)
        assert commands, alert.type
        for command in commands:
            argv = shlex.split(command)
            if argv[0] == "aws":
                aws_cli_command_is_valid(argv)
                continue
            assert argv[0] == "tagwarden" and argv[-4:] == ["--stack-name", "tagwarden-prod", "--region", REGION]
            result = CliRunner().invoke(app, argv[1:])
            # 0 passes, 1 a refused check or a posture gap: an answer. 2 would be a usage error (the command
            # does not work as printed), anything else a crash.
            assert result.exit_code in (0, 1), (command, result.output)
            assert "error" not in result.output.lower() or argv[1] == "check", (command, result.output)
            ran.append(argv[1])
    assert {"history", "check", "posture"} <= set(ran)
    # The tag the ledger never saw gets no `history` (a usage error there), only a check that says why.
    assert [shlex.split(c)[1] for c in look_closer_commands(never_seen, scope)] == ["check"]
