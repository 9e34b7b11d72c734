"""template.yaml deploys safely: what a failed first deploy leaves, log groups that exist before their
functions, alarms on the failure path itself, and EksClusterNames checked before any resource changes.

The looped resources (Fn::ForEach) are checked on the template as the AWS::LanguageExtensions transform
expands it: SAM CLI's own local implementation of that transform (what `sam build` and `sam validate` run).
checkov skips those loops (see .checkov.yaml), so their encryption and retention are asserted here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

# SAM CLI ships no type information (no py.typed).
from samcli.lib.cfn_language_extensions.api import process_template  # type: ignore[import-untyped]
from tagwarden.cli.preflight import CLUSTER_NAME_PATTERN, STACK_FILTER_SUFFIX

from tests.support.template import REPO_ROOT, template

FUNCTIONS = ("PushGuardFunction", "ScanRecorderFunction", "AuditWatcherFunction")
OPERATIONS = [{"Ref": "OperationsTopic"}]
BROUGHT_KEY = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@cache
def expanded(clusters: tuple[str, ...] = (), kms_key_arn: str = "", organization_id: str = "") -> dict[str, Any]:
    """The template after AWS::LanguageExtensions for these parameters (the others at their defaults).

    SAM CLI's expansion also resolves parameters and conditions it can, so values read as a deployed
    stack would have them: a parameter's value, the If branch its condition picks.
    """
    parameters: dict[str, Any] = {"KmsKeyArn": kms_key_arn, "OrganizationId": organization_id}
    if clusters:
        parameters["EksClusterNames"] = list(clusters)
    result: dict[str, Any] = process_template(template(), parameter_values=parameters)
    return result


def resources(clusters: tuple[str, ...] = (), kms_key_arn: str = "", organization_id: str = "") -> dict[str, Any]:
    found: dict[str, Any] = expanded(clusters, kms_key_arn, organization_id)["Resources"]
    return found


def of_type(kind: str, kms_key_arn: str = "", organization_id: str = "") -> dict[str, Any]:
    found = resources(kms_key_arn=kms_key_arn, organization_id=organization_id)
    return {name: r for name, r in found.items() if r["Type"] == kind}


def key_of(value: Any) -> str:
    """Which key a KmsKeyId-like property names: the stack's own, or a brought key's ARN."""
    if value in ({"Fn::GetAtt": "TagwardenKey.Arn"}, {"Fn::GetAtt": ["TagwardenKey", "Arn"]}):
        return "stack key"
    assert isinstance(value, str), value
    return value


def alarms_on(namespace: str, metric: str, organization_id: str = "") -> dict[str, dict[str, Any]]:
    """Alarm properties by the dimension value they watch (a Ref or GetAtt, as written)."""
    watched: dict[str, dict[str, Any]] = {}
    alarms = of_type("AWS::CloudWatch::Alarm", organization_id=organization_id)
    for properties in (r["Properties"] for r in alarms.values()):
        if properties["Namespace"] == namespace and properties["MetricName"] == metric:
            [dimension] = properties["Dimensions"]
            value = dimension["Value"]
            watched[value.get("Ref") or value["Fn::GetAtt"][0]] = properties
    return watched


# --- a first deploy that rolls back -------------------------------------------------------------------


def test_the_stacks_key_is_retained_except_by_the_deploy_that_created_it() -> None:
    key = template()["Resources"]["TagwardenKey"]

    assert key["DeletionPolicy"] == "RetainExceptOnCreate"
    assert key["UpdateReplacePolicy"] == "Retain"


def test_what_a_create_rollback_would_delete_can_be_deleted() -> None:
    # DynamoDB refuses DeleteTable while deletion protection is on, CloudFormation's rollback included:
    # a deletion-protected table marked RetainExceptOnCreate (or Delete) would leave a failed first deploy
    # ROLLBACK_FAILED. So the protected ledger keeps Retain (README "Deploying" says how to remove it).
    for name, resource in of_type("AWS::DynamoDB::Table").items():
        if resource["Properties"].get("DeletionProtectionEnabled"):
            assert resource["DeletionPolicy"] == "Retain", name
        assert resource["UpdateReplacePolicy"] == "Retain", name


# --- log groups before functions ----------------------------------------------------------------------


def sub_text(value: Any) -> str:
    """The text of an Fn::Sub. SAM CLI's local expansion drops the Fn::Sub around a string whose only
    variables are pseudo parameters, which CloudFormation then leaves as they are: either form is fine."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    assert isinstance(text, str)
    return text


def _mentions(value: Any, logical_id: str) -> bool:
    text = repr(value)
    return f"'{logical_id}'" in text or f"${{{logical_id}" in text


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_logs_to_a_group_the_stack_creates_before_it(function: str) -> None:
    logging = resources()[function]["Properties"]["LoggingConfig"]
    group_id = logging["LogGroup"]["Ref"]
    group = resources()[group_id]

    assert group["Type"] == "AWS::Logs::LogGroup"
    # The group's name must not come from the function, or the group would wait for the function (and
    # Lambda could create /aws/lambda/<function> first, unencrypted and without retention).
    assert not _mentions(group["Properties"], function)
    assert sub_text(group["Properties"]["LogGroupName"]) == f"/tagwarden/${{AWS::StackName}}/{function[:-8]}"
    assert group["Properties"]["RetentionInDays"] == template()["Parameters"]["LogRetentionInDays"]["Default"]
    assert key_of(group["Properties"]["KmsKeyId"]) == "stack key"
    assert key_of(resources(kms_key_arn=BROUGHT_KEY)[group_id]["Properties"]["KmsKeyId"]) == BROUGHT_KEY
    # Globals still give the log format and level (SAM merges LoggingConfig).
    assert set(template()["Globals"]["Function"]["LoggingConfig"]) == {"LogFormat", "ApplicationLogLevel"}


def test_the_stacks_key_lets_cloudwatch_logs_of_its_region_encrypt_those_groups() -> None:
    statements = template()["Resources"]["TagwardenKey"]["Properties"]["KeyPolicy"]["Statement"]
    [logs] = [s for s in statements if s["Sid"] == "CloudWatchLogsEncryptsFunctionLogGroups"]
    arns = [arn["Fn::Sub"] for arn in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]]

    # The stack's groups; and the /aws/lambda/<function> groups an upgrade retains, still readable.
    assert [arn.split(":log-group:")[1] for arn in arns] == ["/tagwarden/${AWS::StackName}/*", "/aws/lambda/*"]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}


# --- alarms on the failure path -----------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["Errors", "Throttles", "DestinationDeliveryFailures"])
def test_every_function_alarms_on_errors_throttles_and_failed_hand_over_to_its_failure_queue(metric: str) -> None:
    watched = alarms_on("AWS/Lambda", metric)

    assert set(watched) == set(FUNCTIONS)
    for properties in watched.values():
        assert properties["Threshold"] == 1
        assert properties["AlarmActions"] == OPERATIONS


def test_every_eventbridge_rule_alarms_when_it_cannot_dead_letter() -> None:
    # SAM names the rule of a function's EventBridgeRule event <Function><Event>.
    rules = {
        f"{function}{event}"
        for function in FUNCTIONS
        for event, spec in resources()[function]["Properties"].get("Events", {}).items()
        if spec["Type"] == "EventBridgeRule"
    }
    # With an organization, so the twins' alarms are expanded as deployed (SAM CLI empties the Refs of
    # resources whose condition is false).
    watched = alarms_on("AWS/Events", "InvocationsFailedToBeSentToDlq", organization_id="o-a1b2c3d4e5")

    assert rules == {
        "PushGuardFunctionEcrImageAction",
        "PushGuardFunctionEcrPullThroughCacheAction",
        "PushGuardFunctionEcrReplicationAction",
        "ScanRecorderFunctionEcrImageScan",
        "ScanRecorderFunctionInspectorScan",
        "ScanRecorderFunctionInspectorFinding",
    }
    # Organization: each rule's twin on the organization bus (an AWS::Events::Rule of its own) alarms too.
    twins = {name for name, resource in resources().items() if resource["Type"] == "AWS::Events::Rule"}
    assert twins == {f"{rule}OnOrganizationBus" for rule in rules}
    assert set(watched) == rules | twins
    assert all(properties["AlarmActions"] == OPERATIONS for properties in watched.values())


def test_every_failed_event_queue_is_encrypted_and_alarms_on_its_first_message() -> None:
    queues = of_type("AWS::SQS::Queue")
    watched = alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")

    assert set(queues) == {"PushGuardDeadLetterQueue", "ScanRecorderDeadLetterQueue", "AuditWatcherFailureQueue"}
    assert set(watched) == set(queues)
    for name, queue in queues.items():
        assert key_of(queue["Properties"]["KmsMasterKeyId"]) == "stack key"
        assert key_of(of_type("AWS::SQS::Queue", BROUGHT_KEY)[name]["Properties"]["KmsMasterKeyId"]) == BROUGHT_KEY


def test_logical_ids_that_outputs_and_users_rely_on_are_unchanged() -> None:
    names = set(resources())
    # The resources the loops replaced, under their former logical IDs (no replacement on update).
    assert {
        "PushGuardLogGroup",
        "ScanRecorderLogGroup",
        "AuditWatcherLogGroup",
        "PushGuardDeadLetterQueue",
        "ScanRecorderDeadLetterQueue",
        "AuditWatcherFailureQueue",
        "PushGuardErrorsAlarm",
        "PushGuardThrottlesAlarm",
        "PushGuardDeadLetterQueueAlarm",
        "ScanRecorderErrorsAlarm",
        "ScanRecorderThrottlesAlarm",
        "ScanRecorderDeadLetterQueueAlarm",
        "AuditWatcherErrorsAlarm",
        "AuditWatcherThrottlesAlarm",
        "AuditWatcherFailureQueueAlarm",
    } <= names
    for output, spec in expanded()["Outputs"].items():
        for target in re.findall(r"'(?:Ref|Fn::GetAtt)': \[?'(\w+)'", repr(spec["Value"])):
            assert target in names or target in template()["Parameters"], (output, target)


def test_the_ledger_denies_are_one_managed_policy_on_every_functions_role() -> None:
    [policy] = of_type("AWS::IAM::ManagedPolicy")
    for function in FUNCTIONS:
        assert {"Ref": policy} in resources()[function]["Properties"]["Policies"]


# --- EksClusterNames ----------------------------------------------------------------------------------


def _rule_value(expression: Any, parameters: dict[str, list[str]]) -> Any:
    """Evaluate the rule functions template.yaml's Rules use, as CloudFormation defines them."""
    if not isinstance(expression, dict):
        return expression
    [(function, argument)] = expression.items()
    if function == "Ref":
        return parameters[argument]
    values = [_rule_value(item, parameters) for item in argument]
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::Contains":
        return values[1] in values[0]
    if function == "Fn::EachMemberEquals":
        return all(member == values[1] for member in values[0])
    raise AssertionError(f"rule function {function} is not modelled here")


def cloudformation_accepts_clusters(value: str) -> bool:
    """Would CloudFormation take this EksClusterNames value? Split and trimmed as a CommaDelimitedList,
    each entry matched against AllowedPattern, then every rule's assertions where its condition holds."""
    entries = [entry.strip() for entry in value.split(",")]
    pattern = template()["Parameters"]["EksClusterNames"]["AllowedPattern"]
    if not all(re.fullmatch(pattern, entry) for entry in entries):
        return False
    parameters = {"EksClusterNames": entries}
    for rule in template()["Rules"].values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], parameters):
            continue
        if not all(_rule_value(assertion["Assert"], parameters) for assertion in rule["Assertions"]):
            return False
    return True


@pytest.mark.parametrize("value", ["", "prod", "a,b", "prod, stage_2", "0-eks"])
def test_cluster_names_cloudformation_accepts(value: str) -> None:
    assert cloudformation_accepts_clusters(value)


@pytest.mark.parametrize("value", ["a,", "a,,b", ",a", "a, ,b", "a b", "-a", "a/b", "x" * 101])
def test_a_stray_comma_or_a_bad_name_fails_parameter_validation(value: str) -> None:
    assert not cloudformation_accepts_clusters(value)


def test_the_pattern_alone_accepts_the_empty_default_and_only_eks_names() -> None:
    # CloudFormation applies AllowedPattern to the default's single empty entry too, so the pattern must
    # take '' (the rule rejects an empty entry next to a name); it is the preflight command's grammar.
    pattern = template()["Parameters"]["EksClusterNames"]["AllowedPattern"]

    assert pattern == "^$|" + CLUSTER_NAME_PATTERN
    assert [bool(re.fullmatch(pattern, entry)) for entry in ["", "a", "a b", "_a"]] == [True, True, False, False]


def test_one_subscription_filter_per_cluster_named_as_preflight_expects() -> None:
    filters = {
        name: r for name, r in resources(("prod", "stage-1")).items() if r["Type"].endswith("SubscriptionFilter")
    }

    assert set(filters) == {"AuditLogSubscriptionprod", "AuditLogSubscriptionstage1"}
    for resource in filters.values():
        assert sub_text(resource["Properties"]["FilterName"]) == "${AWS::StackName}" + STACK_FILTER_SUFFIX


# --- the README's example key policy ------------------------------------------------------------------


def _resolved(value: Any, variables: dict[str, str]) -> Any:
    """`value` with every Fn::Sub of pseudo parameters resolved to the README's example values."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda match: variables[match.group(1)], value["Fn::Sub"])
        return {key: _resolved(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, variables) for item in value]
    return value


def test_the_readmes_example_key_policy_is_the_policy_the_stack_gives_its_own_key() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Bringing your own KMS key") :]
    start = section.index("```json\n") + len("```json\n")
    example = json.loads(section[start : section.index("\n```", start)])
    variables = {
        "AWS::Partition": "aws",
        "AWS::AccountId": "111122223333",
        "AWS::Region": "eu-west-1",
        "AWS::StackName": "tagwarden",
    }

    policy = template()["Resources"]["TagwardenKey"]["Properties"]["KeyPolicy"]

    assert example == _resolved(policy, variables)
