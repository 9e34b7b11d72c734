"""The template's alert sinks block (issue 13): chat topic, Security Hub permission, configuration, dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from tagwarden.config import PushGuardConfig

from tests.integration.test_template_safety import resources as expanded_resources
from tests.support.template import REPO_ROOT, resource_properties, template

PACKAGE = REPO_ROOT / "layers" / "tagwarden" / "src" / "tagwarden"


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


def dashboard() -> dict[str, Any]:
    body = resource_properties("Dashboard")["DashboardBody"]["Fn::Sub"]
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", body))  # type: ignore[no-any-return]


def emitted_metrics() -> set[str]:
    """Metrics the code emits, and those the template's metric filters make from its log lines."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(re.findall(r'add_metric\(\s*name="(\w+)"', path.read_text()))
    filters = [r for r in expanded_resources().values() if r["Type"] == "AWS::Logs::MetricFilter"]
    names.update(t["MetricName"] for r in filters for t in r["Properties"]["MetricTransformations"])
    return names


def test_alerts_by_type_and_severity_come_from_the_line_every_published_alert_logs() -> None:
    filters = {n: r for n, r in expanded_resources().items() if r["Type"] == "AWS::Logs::MetricFilter"}
    assert set(filters) == {f"{f}AlertsByTypeAndSeverityFilter" for f in ("PushGuard", "ScanRecorder", "AuditWatcher")}
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
