"""The template's alert sinks block (issue 13): chat topic, Security Hub permission, configuration, dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tagwarden.config import PushGuardConfig

from tests.integration.test_template_safety import resources as expanded_resources
from tests.support.template import REPO_ROOT, resource_properties, template

PACKAGE = REPO_ROOT / "layers" / "tagwarden" / "src" / "tagwarden"
# Every function that publishes alerts: the ones whose role may publish to the alerts topic.
PUBLISHING_FUNCTIONS = ("PushGuard", "ScanRecorder", "AuditWatcher", "TrailWatcher", "TagReverter")


def test_the_functions_are_told_where_the_optional_sinks_are_and_accept_what_they_are_told() -> None:
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    chat = variables["CHAT_TOPIC_ARN"]["Fn::If"]
    hub = variables["SECURITY_HUB_PRODUCT_ARN"]["Fn::If"]
    assert chat == ["HasChatNotifications", {"Ref": "ChatTopic"}, ""]
    assert hub[0] == "HasSecurityHubFindings" and hub[2] == ""
    product = hub[1]["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::Region}", "eu-west-1")
    product = product.replace("${AWS::AccountId}", "111122223333")
    base = {"LEDGER_TABLE_NAME": "t-ledger", "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"}
    config = PushGuardConfig.from_env(
        {**base, "CHAT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:chat", "SECURITY_HUB_PRODUCT_ARN": product}
    )
    assert config.SECURITY_HUB_PRODUCT_ARN == "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
    off = PushGuardConfig.from_env({**base, "CHAT_TOPIC_ARN": "", "SECURITY_HUB_PRODUCT_ARN": ""})
    assert (off.CHAT_TOPIC_ARN, off.SECURITY_HUB_PRODUCT_ARN) == (None, None)


def test_security_hub_import_is_allowed_on_the_accounts_default_product_only() -> None:
    statements = resource_properties("AlertSinksPublishPolicy")["PolicyDocument"]["Statement"]
    by_sid = {statement["Fn::If"][1]["Sid"]: statement["Fn::If"] for statement in statements}
    condition, hub, _ = by_sid["ImportFindingsIntoSecurityHub"]
    assert condition == "HasSecurityHubFindings"
    assert hub["Action"] == "securityhub:BatchImportFindings"
    product = "arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default"
    assert hub["Resource"] == {"Fn::Sub": product}
    assert by_sid["PublishChatNotifications"][1]["Resource"] == {"Ref": "ChatTopic"}
    roles = resource_properties("AlertSinksPublishPolicy")["Roles"]
    functions = ("PushGuard", "ScanRecorder", "AuditWatcher", "TrailWatcher")
    reverter = {"Fn::If": ["RevertOn", {"Ref": "TagReverterFunctionRole"}, {"Ref": "AWS::NoValue"}]}
    assert roles == [*({"Ref": f"{f}FunctionRole"} for f in functions), reverter]


def test_the_chat_topic_is_encrypted_and_only_the_functions_publish_over_tls() -> None:
    assert template()["Resources"]["ChatTopic"]["Condition"] == "HasChatNotifications"
    assert "KmsMasterKeyId" in resource_properties("ChatTopic")
    statements = {s["Sid"]: s for s in resource_properties("ChatTopicPolicy")["PolicyDocument"]["Statement"]}
    assert statements["NobodyElsePublishes"]["Effect"] == "Deny"
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def dashboard_sub() -> tuple[str, dict[str, Any]]:
    """The dashboard body's `Fn::Sub` text and its variables."""
    body, variables = resource_properties("Dashboard")["DashboardBody"]["Fn::Sub"]
    return body, variables


def dashboard() -> dict[str, Any]:
    """The dashboard body, each `${Name}` or `${Name.Attribute}` replaced by `Name` or `Name.Attribute`."""
    body, _ = dashboard_sub()
    return json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))  # type: ignore[no-any-return]


def emitted_metrics() -> set[str]:
    """Metrics the code emits, and those the template's metric filters make from its log lines."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(re.findall(r'add_metric\(\s*name="(\w+)"', path.read_text()))
    filters = [r for r in expanded_resources().values() if r["Type"] == "AWS::Logs::MetricFilter"]
    names.update(t["MetricName"] for r in filters for t in r["Properties"]["MetricTransformations"])
    return names


def with_revert(organization_id: str = "") -> dict[str, Any]:
    """The resources of a stack with every optional publisher on (RevertProtectedTags, which adds the reverter)."""
    return expanded_resources(revert=("shop/",), organization_id=organization_id)


def test_alerts_by_type_and_severity_come_from_the_line_every_published_alert_logs() -> None:
    filters = {n: r for n, r in with_revert().items() if r["Type"] == "AWS::Logs::MetricFilter"}
    assert set(filters) == {f"{f}AlertsByTypeAndSeverityFilter" for f in PUBLISHING_FUNCTIONS}
    source = (PACKAGE / "services" / "alert_delivery.py").read_text()
    assert 'logger.warning(\n            "alert published",' in source
    assert '"alert_type": alert.type, "severity": alert.severity' in source
    for resource in filters.values():
        assert resource["Properties"]["FilterPattern"] == '{ $.message = "alert published" }'
        (transformation,) = resource["Properties"]["MetricTransformations"]
        assert transformation["Dimensions"] == [
            {"Key": "type", "Value": "$.alert_type"},
            {"Key": "severity", "Value": "$.severity"},
        ]


def test_the_dashboard_shows_what_operations_watch_from_metrics_the_code_emits() -> None:
    widgets = [widget["properties"] for widget in dashboard()["widgets"]]
    titles = " | ".join(widget["title"] for widget in widgets)
    for words in ("invocations", "Errors and throttles", "tag moves", "Alerts by type and severity", "audit lines"):
        assert words.lower() in titles.lower(), words
    assert "queues" in titles
    tagwarden = {metric[1] for widget in widgets for metric in widget["metrics"] if metric[0] == "Tagwarden"}
    searched = {
        name
        for widget in widgets
        for metric in widget["metrics"]
        if isinstance(metric[0], dict)
        for name in re.findall(r'MetricName=\\?"(\w+)', metric[0]["expression"])
    }
    assert tagwarden | searched <= emitted_metrics(), (tagwarden | searched) - emitted_metrics()
    assert {"TagMoves", "AuditLines", "SkippedAuditLines", "AlertsByTypeAndSeverity", "AlertSinkRejections"} <= (
        tagwarden | searched
    )


def publishing_functions(organization_id: str = "") -> set[str]:
    """The functions whose own policies let them publish to the alerts topic, read from the template."""
    found = set()
    for name, resource in with_revert(organization_id).items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        text = json.dumps(resource["Properties"].get("Policies", []))
        if '"sns:Publish"' in text and '"AlertsTopic"' in text:
            found.add(name.removesuffix("Function"))
    return found


def service_names() -> dict[str, str]:
    """Each function's Powertools service name (the `service` dimension of its metrics)."""
    return {
        name.removesuffix("Function"): resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for name, resource in with_revert().items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@pytest.mark.parametrize("organization_id", ["", "o-abcdef1234"], ids=["account", "organization"])
def test_every_publishing_function_and_every_queue_is_on_the_dashboard_the_filters_and_the_alarm(
    organization_id: str,
) -> None:
    publishing = publishing_functions(organization_id)
    assert publishing == set(PUBLISHING_FUNCTIONS)
    _, variables = dashboard_sub()
    widgets = {widget["properties"]["title"]: widget["properties"] for widget in dashboard()["widgets"]}

    def names(title: str, metric_name: str) -> set[str]:
        return {m[3] for m in widgets[title]["metrics"] if m[0] != {} and m[1] == metric_name}

    # A conditional function or queue is named through a variable that is its name when it exists.
    reverter = variables["TagReverterName"]["Fn::If"]
    assert reverter[:2] == ["RevertOn", {"Ref": "TagReverterFunction"}]
    expected = {f"{f}Function" for f in publishing - {"TagReverter"}} | {"TagReverterName"}
    invocations = "Events per function (invocations)"
    errors = "Errors and throttles"
    assert names(invocations, "Invocations") == expected
    assert names(errors, "Errors") == names(errors, "Throttles") == expected
    # Every queue of the template (dead-letter, failure, revert requests) shows its depth.
    queues = {n for n, r in with_revert(organization_id).items() if r["Type"] == "AWS::SQS::Queue"}
    shown = names("Dead-letter, failure and revert queues (messages waiting)", "ApproximateNumberOfMessagesVisible")
    resolved = set()
    for item in shown:
        if item in variables:
            condition, value, _ = variables[item]["Fn::If"]
            assert condition == "RevertOn"
            attribute = value["Fn::GetAtt"]
            item = attribute if isinstance(attribute, str) else ".".join(attribute)
        resolved.add(item.removesuffix(".QueueName"))
    assert resolved == queues, queues ^ resolved
    # Alerts by type and severity: a metric filter on every publishing function's log group.
    filters = {n: r for n, r in with_revert().items() if r["Type"] == "AWS::Logs::MetricFilter"}
    for function in publishing:
        log_group = filters[f"{function}AlertsByTypeAndSeverityFilter"]["Properties"]["LogGroupName"]
        assert log_group in ({"Ref": f"{function}LogGroup"}, {"Ref": {"Fn::Sub": "${Function}LogGroup"}})
    assert template()["Resources"]["TagReverterAlertsByTypeAndSeverityFilter"]["Condition"] == "RevertOn"
    # The sinks' refusal alarm sums every publishing function's service.
    metrics = resource_properties("AlertSinkRejectionsAlarm")["Metrics"]
    alarmed = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in metrics if "MetricStat" in m}
    services = service_names()
    assert alarmed == {services[f] for f in publishing}
    expression = next(m["Expression"] for m in metrics if m.get("ReturnData"))
    assert all(f"FILL({m['Id']}, 0)" in expression for m in metrics if "MetricStat" in m)
