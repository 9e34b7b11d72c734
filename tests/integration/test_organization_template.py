"""The organization's templates: the central stack's Organization block, member/template.yaml (forwarding,
read role) and member/clusters.yaml (EKS audit-log subscriptions).

The member templates have no transform, so their conditions are plain CloudFormation; `created` evaluates them
(the functions the template uses: And, Not, Equals, Condition, Select, Split, Join, Ref) to show which
resources an account and region get. cfn-lint and checkov run on both templates in `make lint`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

# cfn-lint ships no type information (no py.typed).
from cfnlint.api import lint_all  # type: ignore[import-untyped]

from tests.support.template import CLUSTERS_TEMPLATE, MEMBER_TEMPLATE, template

CENTRAL = "111122223333"
MEMBER = "444455556666"
BUS = f"arn:aws:events:eu-west-1:{CENTRAL}:event-bus/tagwarden-tagwarden-organization"
DESTINATION = f"arn:aws:logs:eu-west-1:{CENTRAL}:destination:tagwarden-tagwarden-audit"
ORGANIZATION_RESOURCES = {
    "OrganizationEventBus",
    "OrganizationEventBusPolicy",
    "OrganizationAuditStream",
    "OrganizationAuditDestinationRole",
    "OrganizationAuditDestination",
    "OrganizationAuditStreamMapping",
}


def central() -> dict[str, Any]:
    return template()


def member() -> dict[str, Any]:
    return template(MEMBER_TEMPLATE)


def clusters() -> dict[str, Any]:
    return template(CLUSTERS_TEMPLATE)


def default_bus_rules() -> dict[str, tuple[str, dict[str, Any]]]:
    """The functions' SAM EventBridge rules, by the rule's logical id: (function, event properties)."""
    rules = {}
    for name, resource in central()["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event, spec in resource["Properties"].get("Events", {}).items():
            if spec["Type"] == "EventBridgeRule":
                rules[f"{name}{event}"] = (name, spec["Properties"])
    return rules


# --- the central stack --------------------------------------------------------------------------------


def test_every_function_rule_has_a_twin_on_the_organization_bus_with_the_same_pattern_and_failure_path() -> None:
    resources = central()["Resources"]
    rules = default_bus_rules()

    assert len(rules) >= 6  # the push guard's three and the scan recorder's three, at least
    for rule, (function, properties) in rules.items():
        twin = resources[f"{rule}OnOrganizationBus"]
        assert twin["Condition"] == "IsOrganization"
        assert twin["Properties"]["EventBusName"] == {"Ref": "OrganizationEventBus"}
        assert twin["Properties"]["EventPattern"] == properties["Pattern"], rule
        [target] = twin["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": f"{function}.Arn"}
        assert target["RetryPolicy"] == properties["RetryPolicy"]
        assert target["DeadLetterConfig"] == properties["DeadLetterConfig"]
        # The dead-letter queue lets the twin send to it.
        queue = properties["DeadLetterConfig"]["Arn"]["Fn::GetAtt"].removesuffix(".Arn")
        [allowed] = [
            s for s in resources[f"{queue}Policy"]["Properties"]["PolicyDocument"]["Statement"]
            if s["Sid"] == "EventBridgeRuleDeadLetters"
        ]  # fmt: skip
        twin_arn = {
            "Fn::If": ["IsOrganization", {"Fn::GetAtt": f"{rule}OnOrganizationBus.Arn"}, {"Ref": "AWS::NoValue"}]
        }
        assert twin_arn in allowed["Condition"]["ArnEquals"]["aws:SourceArn"]


def test_nothing_organization_wide_exists_without_an_organization_id() -> None:
    resources = central()["Resources"]
    conditional = {
        name for name, r in resources.items() if isinstance(r, dict) and r.get("Condition") == "IsOrganization"
    }

    assert ORGANIZATION_RESOURCES | {f"{rule}OnOrganizationBus" for rule in default_bus_rules()} <= conditional
    assert central()["Parameters"]["OrganizationId"]["Default"] == ""
    assert central()["Conditions"]["IsOrganization"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("o-a1b2c3d4e5", True), ("o-abc", False), ("O-A1B2C3D4E5", False), ("r-a1b2", False)],
)
def test_the_organization_id_has_the_organizations_form(value: str, valid: bool) -> None:
    assert bool(re.fullmatch(central()["Parameters"]["OrganizationId"]["AllowedPattern"], value)) is valid


def test_only_accounts_of_the_organization_may_put_events_and_subscribe() -> None:
    resources = central()["Resources"]
    statement = resources["OrganizationEventBusPolicy"]["Properties"]["Statement"]
    destination_policy = resources["OrganizationAuditDestination"]["Properties"]["DestinationPolicy"]["Fn::Sub"]
    [subscribe] = json.loads(destination_policy.replace("${OrganizationId}", "o-a1b2c3d4e5"))["Statement"]

    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}},
        # Only AWS services' events, as the members' rules forward them (PutEvents refuses custom `aws.` sources).
        "ForAllValues:StringEquals": {"events:source": ["aws.ecr", "aws.inspector2"]},
    }
    assert subscribe["Action"] == "logs:PutSubscriptionFilter"
    assert subscribe["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"]}}


def test_the_audit_stream_is_read_in_partial_batches_with_a_failure_queue_within_its_retention() -> None:
    resources = central()["Resources"]
    mapping = resources["OrganizationAuditStreamMapping"]["Properties"]
    stream = resources["OrganizationAuditStream"]["Properties"]

    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": "AuditWatcherFailureQueue.Arn"}
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert mapping["MaximumRecordAgeInSeconds"] < stream["RetentionPeriodHours"] * 3600
    assert stream["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert stream["StreamEncryption"]["EncryptionType"] == "KMS"


def _statement(function: str, sid: str) -> dict[str, Any]:
    for policy in central()["Resources"][function]["Properties"]["Policies"]:
        for entry in policy.get("Statement", []) if isinstance(policy, dict) else []:
            statement = entry["Fn::If"][1] if "Fn::If" in entry else entry
            if statement.get("Sid") == sid:
                assert entry["Fn::If"][0] == "IsOrganization", sid
                return statement  # type: ignore[no-any-return]
    raise AssertionError(f"{function} has no {sid}")


def test_function_roles_reach_the_stream_and_member_roles_only_with_an_organization() -> None:
    kinesis = _statement("AuditWatcherFunction", "ReadOrganizationAuditStream")
    assume = _statement("PushGuardFunction", "ReadMemberRegistries")

    assert kinesis["Resource"] == {"Fn::GetAtt": "OrganizationAuditStream.Arn"}
    assert all(action.startswith(("kinesis:Describe", "kinesis:Get", "kinesis:List")) for action in kinesis["Action"])
    assert assume["Action"] == "sts:AssumeRole"
    assert assume["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${MemberReadRoleName}"}
    assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}}


# --- the member template ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [MEMBER_TEMPLATE, CLUSTERS_TEMPLATE], ids=lambda p: p.name)
def test_the_member_templates_are_plain_cloudformation_that_lints_clean(path: Any) -> None:
    assert "Transform" not in template(path)
    # Errors and warnings, as `make lint` fails on (informational matches are not shown there either).
    assert [m for m in lint_all(path.read_text()) if m.rule.id[0] in "EW"] == []


def test_members_filter_audit_logs_with_the_central_pattern() -> None:
    assert clusters()["Mappings"]["AuditLogFilter"] == central()["Mappings"]["AuditLogFilter"]


def test_a_failing_cluster_subscription_cannot_roll_back_forwarding_or_the_read_role() -> None:
    # Two StackSets: the subscriptions (which fail when a log group is missing) share no stack with the rest.
    assert not any(r["Type"] == "AWS::Logs::SubscriptionFilter" for r in member()["Resources"].values())
    assert not any(r["Type"] in ("AWS::Events::Rule", "AWS::IAM::Role") for r in clusters()["Resources"].values()
                   if r.get("Condition") != "HasClusters")  # fmt: skip
    assert {"ClusterNames", "AuditDestinationArn"} <= set(clusters()["Parameters"])
    assert not {"ClusterNames", "AuditDestinationArn"} & set(member()["Parameters"])


def test_every_subscription_names_the_role_cloudwatch_logs_validates_an_organization_subscription_with() -> None:
    resources = clusters()["Resources"]
    role = resources["AuditSubscriptionRole"]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    [policy] = role["Properties"]["Policies"]
    [permission] = policy["PolicyDocument"]["Statement"]
    filters = {name: r for name, r in resources.items() if r["Type"] == "AWS::Logs::SubscriptionFilter"}

    assert len(filters) == 10
    assert all(f["Properties"]["RoleArn"] == {"Fn::GetAtt": "AuditSubscriptionRole.Arn"} for f in filters.values())
    # Under the condition every subscription implies: the role exists wherever a filter does.
    assert role["Condition"] == "HasClusters"
    assert all(
        {"Fn::Condition": "HasClusters"} in clusters()["Conditions"][f["Condition"]]["Fn::And"]
        for f in filters.values()
    )
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*"}}
    }
    assert permission["Action"] == "logs:PutLogEvents"
    assert permission["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/eks/*/cluster:*"
    }


def _looser(forwarded: Any, wanted: Any) -> bool:
    """Whether a member's filter lets through every event the central filter matches.

    Each field the member filters, the central rule filters too, within the member's values (a list of
    values: the central's are among the member's; a nested filter: the same, field by field).
    """
    if isinstance(forwarded, dict):
        return isinstance(wanted, dict) and all(
            key in wanted and _looser(value, wanted[key]) for key, value in forwarded.items()
        )
    if isinstance(forwarded, list) and isinstance(wanted, list):
        return all(value in forwarded for value in wanted)
    return bool(forwarded == wanted)


def test_members_forward_every_event_the_central_functions_read() -> None:
    forwarding = [
        r["Properties"]["EventPattern"] for r in member()["Resources"].values() if r["Type"] == "AWS::Events::Rule"
    ]
    for rule, (_, properties) in default_bus_rules().items():
        assert any(_looser(forwarded, properties["Pattern"]) for forwarded in forwarding), rule


def test_a_member_filter_narrower_than_the_central_rule_is_caught() -> None:
    central_rule = {"source": ["aws.ecr"], "detail-type": ["ECR Image Action"], "detail": {"result": ["SUCCESS"]}}

    assert _looser({"source": ["aws.ecr"], "detail-type": ["ECR Image Action", "ECR Image Scan"]}, central_rule)
    assert not _looser({"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"]}, central_rule)
    assert not _looser({**central_rule, "detail": {"result": ["SUCCESS"], "action-type": ["PUSH"]}}, central_rule)


def test_members_forward_the_ecr_api_calls_the_trail_watcher_reads() -> None:
    [api_calls] = [
        r["Properties"]["EventPattern"]
        for r in member()["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        and r["Properties"]["EventPattern"]["detail-type"] == ["AWS API Call via CloudTrail"]
    ]

    assert api_calls["source"] == ["aws.ecr"]
    assert set(api_calls["detail"]["eventName"]) == {
        "PutImage", "BatchDeleteImage", "PutImageTagMutability", "CreateRepository",
        "CreateRepositoryCreationTemplate", "UpdateRepositoryCreationTemplate", "DeleteRepositoryCreationTemplate",
    }  # fmt: skip


def test_the_read_role_reads_manifests_only_for_the_central_stacks_push_guard() -> None:
    role = member()["Resources"]["ReadRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    [policy] = role["Policies"]

    assert role["RoleName"] == {"Ref": "ReadRoleName"}
    assert member()["Parameters"]["ReadRoleName"]["Default"] == central()["Parameters"]["MemberReadRoleName"]["Default"]
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${CentralStackName}-PushGuardFunctionRole-*"
    }
    # The push guard reads manifests only (OrganizationRegistries: BatchGetImage), and only it assumes the role.
    assert [s["Action"] for s in policy["PolicyDocument"]["Statement"]] == [["ecr:BatchGetImage"]]
    functions = [
        r
        for r in central()["Resources"].values()
        if isinstance(r, dict) and r.get("Type") == "AWS::Serverless::Function"
    ]
    with_role = [
        f for f in functions if "MEMBER_READ_ROLE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert [f["Properties"]["Handler"] for f in with_role] == [
        central()["Resources"]["PushGuardFunction"]["Properties"]["Handler"]
    ]


# --- which resources an account and region get --------------------------------------------------------


def _value(node: Any, parameters: dict[str, Any], conditions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_value(item, parameters, conditions) for item in node]
    if not isinstance(node, dict):
        return node
    [(function, argument)] = node.items()
    if function == "Ref":
        return parameters[argument]
    if function in ("Condition", "Fn::Condition"):  # `!Condition` short form, as tests.support parses it
        return _value(conditions[argument], parameters, conditions)
    values = _value(argument, parameters, conditions)
    if function == "Fn::And":
        return all(values)
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::Equals":
        return values[0] == values[1]
    if function == "Fn::Select":
        return values[1][int(values[0])]
    if function == "Fn::Split":
        return values[1].split(values[0])
    if function == "Fn::Join":
        return values[0].join(values[1])
    raise AssertionError(f"unexpected function {function}")


def created(account: str, region: str, **given: Any) -> dict[str, Any]:
    """The member templates' resources in `account` and `region` (both StackSets' instances): logical id -> the
    cluster subscribed, if any."""
    found = {}
    for stack in (member(), clusters()):
        found.update(_created(stack, account, region, given))
    return found


def _created(stack: dict[str, Any], account: str, region: str, given: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {name: p.get("Default") for name, p in stack["Parameters"].items()}
    parameters.update({"AWS::AccountId": account, "AWS::Region": region, "CentralAccountId": CENTRAL})
    parameters.update({"CentralEventBusArn": BUS, "AuditDestinationArn": DESTINATION, **given})
    conditions = stack["Conditions"]
    found = {}
    for name, resource in stack["Resources"].items():
        if "Condition" in resource and not _value({"Condition": resource["Condition"]}, parameters, conditions):
            continue
        subscribed = resource.get("Properties", {}).get("LogGroupName", {}).get("Fn::Sub")
        found[name] = _value(subscribed[1]["Name"], parameters, conditions) if subscribed else None
    return found


def test_a_member_in_the_central_region_forwards_subscribes_its_clusters_and_has_the_read_role() -> None:
    resources = created(MEMBER, "eu-west-1", ClusterNames="prod,staging")

    assert {"ForwardEcrEvents", "ForwardEcrApiCalls", "ForwardInspectorFindings", "ReadRole"} <= set(resources)
    assert sorted(v for k, v in resources.items() if k.startswith("AuditLogSubscription")) == ["prod", "staging"]
    assert "AuditSubscriptionRole" in resources


def test_a_member_in_another_region_forwards_but_neither_subscribes_nor_repeats_the_global_role() -> None:
    resources = created(MEMBER, "us-east-1", ClusterNames="prod")

    assert "ForwardEcrEvents" in resources
    assert not any(name.startswith("AuditLogSubscription") for name in resources)
    assert "ReadRole" not in resources and "AuditSubscriptionRole" not in resources


def test_the_central_account_forwards_only_from_its_other_regions() -> None:
    assert created(CENTRAL, "eu-west-1", ClusterNames="prod") == {
        "MemberStackPlaceholder": None,
        "ClustersStackPlaceholder": None,
    }
    elsewhere = created(CENTRAL, "us-east-1")
    assert "ForwardEcrEvents" in elsewhere and "ReadRole" not in elsewhere


def test_inspector_events_are_not_forwarded_when_the_central_account_is_inspectors_administrator() -> None:
    resources = created(MEMBER, "eu-west-1", ForwardInspector="false")

    assert "ForwardInspectorFindings" not in resources and "ForwardInspectorScans" not in resources
    assert "ForwardEcrEvents" in resources


def test_no_clusters_means_no_subscription_and_ten_is_the_most() -> None:
    assert not any(name.startswith("AuditLogSubscription") for name in created(MEMBER, "eu-west-1"))
    assert "AuditSubscriptionRole" not in created(MEMBER, "eu-west-1")
    ten = created(MEMBER, "eu-west-1", ClusterNames=",".join(f"c{n}" for n in range(10)))
    assert sorted(v for k, v in ten.items() if k.startswith("AuditLogSubscription")) == [f"c{n}" for n in range(10)]
    # An eleventh name, an empty entry or a space is refused before anything changes.
    pattern = clusters()["Parameters"]["ClusterNames"]["AllowedPattern"]
    for refused in (",".join(f"c{n}" for n in range(11)), "prod,", "prod,,staging", ",prod", "prod, staging"):
        assert re.fullmatch(pattern, refused) is None, refused
    assert re.fullmatch(pattern, "prod_1,staging-2") is not None


def test_with_an_organization_alerts_make_no_statement_about_which_accounts_send_events() -> None:
    variables = central()["Resources"]["AuditWatcherFunction"]["Properties"]["Environment"]["Variables"]

    assert variables["MONITORED_ACCOUNTS"]["Fn::If"][:2] == ["IsOrganization", ""]
    assert variables["TAGWARDEN_ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}
