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

FUNCTIONS = ("PushGuardFunction", "ScanRecorderFunction", "AuditWatcherFunction", "TrailWatcherFunction")
OPERATIONS = [{"Ref": "OperationsTopic"}]
BROUGHT_KEY = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@cache
def expanded(
    clusters: tuple[str, ...] = (), kms_key_arn: str = "", revert: tuple[str, ...] = (), organization_id: str = ""
) -> dict[str, Any]:
    """The template after AWS::LanguageExtensions for these parameters (the others at their defaults);
    `revert`: RevertProtectedTags on, with these repository prefixes.

    SAM CLI's expansion also resolves parameters and conditions it can, so values read as a deployed
    stack would have them: a parameter's value, the If branch its condition picks.
    """
    parameters: dict[str, Any] = {"KmsKeyArn": kms_key_arn, "OrganizationId": organization_id}
    if clusters:
        parameters["EksClusterNames"] = list(clusters)
    if revert:
        parameters |= {"RevertProtectedTags": "true", "RevertRepositoryPrefixes": list(revert)}
    result: dict[str, Any] = process_template(template(), parameter_values=parameters)
    return result


def resources(
    clusters: tuple[str, ...] = (), kms_key_arn: str = "", revert: tuple[str, ...] = (), organization_id: str = ""
) -> dict[str, Any]:
    """The resources a stack with these parameters has (the expansion keeps a resource whose condition is false,
    with its references dropped: the opt-in revert's are left out unless `revert` turns it on)."""
    found: dict[str, Any] = expanded(clusters, kms_key_arn, revert, organization_id)["Resources"]
    if revert:
        return found
    return {name: r for name, r in found.items() if r.get("Condition") != "RevertOn"}


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
        # Metric-math alarms (several metrics, no Namespace of their own) watch no single resource.
        if properties.get("Namespace") == namespace and properties.get("MetricName") == metric:
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
        "TrailWatcherFunctionEcrApiCall",
    }
    # Organization: each rule's twin on the organization bus (an AWS::Events::Rule of its own) alarms too.
    twins = {name for name, resource in resources().items() if resource["Type"] == "AWS::Events::Rule"}
    assert twins == {f"{rule}OnOrganizationBus" for rule in rules}
    assert set(watched) == rules | twins
    assert all(properties["AlarmActions"] == OPERATIONS for properties in watched.values())


def test_every_failed_event_queue_is_encrypted_and_alarms_on_its_first_message() -> None:
    queues = of_type("AWS::SQS::Queue")
    watched = alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")

    assert set(queues) == {
        "PushGuardDeadLetterQueue",
        "ScanRecorderDeadLetterQueue",
        "AuditWatcherFailureQueue",
        "TrailWatcherDeadLetterQueue",
    }
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


def _rule_value(expression: Any, parameters: dict[str, Any]) -> Any:
    """Evaluate the rule functions template.yaml's Rules use, as CloudFormation defines them."""
    if not isinstance(expression, dict):
        return expression
    [(function, argument)] = expression.items()
    if function == "Ref":
        return parameters[argument]
    values = [_rule_value(item, parameters) for item in argument]
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::Equals":
        return values[0] == values[1]
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
    return rules_accept({**REVERT_DEFAULTS, "EksClusterNames": entries})


# Parameters at their defaults, as the rule functions see them (a CommaDelimitedList as a list).
REVERT_DEFAULTS: dict[str, Any] = {"RevertProtectedTags": "false", "RevertRepositoryPrefixes": [""]}


def rules_accept(parameters: dict[str, Any]) -> bool:
    """Whether every rule whose condition holds accepts these parameter values."""
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


# --- opt-in revert (issue 12) -------------------------------------------------------------------------

REVERT_PREFIXES = ("shop/", "platform/base")


def statements(function: str, revert: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The inline IAM statements of a function's role, as deployed with these parameters."""
    policies = resources(revert=revert)[function]["Properties"]["Policies"]
    return [statement for policy in policies if isinstance(policy, dict) and "Statement" in policy
            for statement in policy["Statement"]]  # fmt: skip


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


@pytest.mark.parametrize("revert", [(), REVERT_PREFIXES], ids=["revert off", "revert on"])
def test_only_the_tag_reverter_writes_to_ecr(revert: tuple[str, ...]) -> None:
    for function in FUNCTIONS:
        ecr = [
            a
            for s in statements(function, revert)
            if s["Effect"] == "Allow"
            for a in actions(s)
            if a.startswith("ecr:")
        ]
        # The push guard reads image indexes and where tags point; nobody else touches ECR.
        assert ecr == (["ecr:BatchGetImage"] if function == "PushGuardFunction" else []), function


def test_the_tag_reverters_ecr_write_is_limited_to_the_prefixes() -> None:
    ecr = [
        s for s in statements("TagReverterFunction", REVERT_PREFIXES) if any(a.startswith("ecr:") for a in actions(s))
    ]

    [statement] = ecr
    assert sorted(actions(statement)) == ["ecr:BatchGetImage", "ecr:DescribeRepositories", "ecr:PutImage"]
    prefix = "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/"
    assert statement["Resource"] == [f"{prefix}shop/*", f"{prefix}platform/base*"]


def test_revert_resources_exist_only_when_turned_on() -> None:
    names = {"TagReverterFunction", "RevertRequestQueue", "RevertRequestDeadLetterQueue", "TagReverterLogGroup"}
    assert not names & set(resources())
    assert names <= set(resources(revert=REVERT_PREFIXES))
    assert "HandRevertRequestsOver" not in {s.get("Sid") for s in statements("PushGuardFunction")}
    [handoff] = [
        s for s in statements("PushGuardFunction", REVERT_PREFIXES) if s.get("Sid") == "HandRevertRequestsOver"
    ]
    assert handoff["Action"] == "sqs:SendMessage"
    assert handoff["Resource"] == {"Fn::GetAtt": "RevertRequestQueue.Arn"}


def test_the_revert_queues_log_group_and_alarms_are_as_safe_as_the_others() -> None:
    found = resources(revert=REVERT_PREFIXES)
    queue, dead_letter = found["RevertRequestQueue"]["Properties"], found["RevertRequestDeadLetterQueue"]["Properties"]
    for properties in (queue, dead_letter):
        assert key_of(properties["KmsMasterKeyId"]) == "stack key"
    # The reverter's last receive (REVERT_MAX_ATTEMPTS) is the queue's last before the dead-letter queue.
    environment = found["TagReverterFunction"]["Properties"]["Environment"]["Variables"]
    assert str(queue["RedrivePolicy"]["maxReceiveCount"]) == environment["REVERT_MAX_ATTEMPTS"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": "RevertRequestDeadLetterQueue.Arn"}
    assert queue["VisibilityTimeout"] >= 6 * template()["Globals"]["Function"]["Timeout"]
    mapping = found["TagReverterRequests"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": "RevertRequestQueue.Arn"}
    # No SAM SQS event: it would attach a managed policy receiving from every queue of the account.
    assert "Events" not in found["TagReverterFunction"]["Properties"]
    group = found["TagReverterLogGroup"]["Properties"]
    assert key_of(group["KmsKeyId"]) == "stack key" and group["RetentionInDays"] == 365
    assert found["TagReverterFunction"]["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": "TagReverterLogGroup"}}
    alarms = [r["Properties"] for r in found.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {(a["MetricName"], repr(a["Dimensions"][0]["Value"])) for a in alarms if a["AlarmActions"] == OPERATIONS}
    assert ("Errors", repr({"Ref": "TagReverterFunction"})) in watched
    assert ("Throttles", repr({"Ref": "TagReverterFunction"})) in watched
    assert (
        "ApproximateNumberOfMessagesVisible",
        repr({"Fn::GetAtt": "RevertRequestDeadLetterQueue.QueueName"}),
    ) in watched


@pytest.mark.parametrize(
    ("on", "prefixes", "accepted"),
    [
        ("false", [""], True),
        ("true", ["shop/"], True),
        ("true", ["shop/", "platform/base"], True),
        ("true", [""], False),
        ("true", ["shop/", ""], False),
    ],
)
def test_revert_needs_repository_prefixes_before_any_resource_changes(
    on: str, prefixes: list[str], accepted: bool
) -> None:
    pattern = template()["Parameters"]["RevertRepositoryPrefixes"]["AllowedPattern"]
    assert all(re.fullmatch(pattern, prefix) for prefix in prefixes)
    assert (
        rules_accept({"EksClusterNames": [""], "RevertProtectedTags": on, "RevertRepositoryPrefixes": prefixes})
        is accepted
    )


def test_a_wildcard_prefix_is_refused_by_the_pattern() -> None:
    pattern = template()["Parameters"]["RevertRepositoryPrefixes"]["AllowedPattern"]
    assert not any(re.fullmatch(pattern, prefix) for prefix in ["*", "shop/*", "Shop/", " shop/"])


# --- the admission webhook (issue 11) ------------------------------------------------------------------

ADMISSION_RESOURCES = ("AdmissionWebhookRole", "AdmissionImageRepository")


def arn_of(value: Any) -> str:
    """The resource a GetAtt of `Arn` names, in either form the expansion leaves."""
    target = value["Fn::GetAtt"]
    name, attribute = target.split(".") if isinstance(target, str) else target
    assert attribute == "Arn", value
    return str(name)


def test_the_webhooks_role_and_repository_exist_only_with_clusters() -> None:
    template_resources = template()["Resources"]

    for name in ADMISSION_RESOURCES:
        assert template_resources[name]["Condition"] == "HasEksClusters"
    for output in ("AdmissionWebhookRoleArn", "AdmissionImageRepositoryUri"):
        assert template()["Outputs"][output]["Condition"] == "HasEksClusters"
    [loop] = [value for key, value in template_resources.items() if key.endswith("AdmissionPodIdentityAssociations")]
    assert next(iter(loop[2].values()))["Condition"] == "HasEksClusters"


def test_the_webhooks_role_only_reads_the_ledger_and_decrypts_through_dynamodb() -> None:
    from tagwarden.cli.admission import NAMESPACE, SERVICE_ACCOUNT

    role = resources(("prod",))["AdmissionWebhookRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    allowed = {
        (action, arn_of(s["Resource"]) if action.startswith("dynamodb:") else key_of(s["Resource"]))
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }

    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert all(s["Effect"] == "Allow" for s in statements)
    assert {action for action, _ in allowed} == {"dynamodb:BatchGetItem", "kms:Decrypt"}
    # Only the webhook's own service account, in the stack's clusters (Pod Identity's session tags).
    tags = trust["Condition"]["StringEquals"]
    assert tags["aws:RequestTag/kubernetes-namespace"] == NAMESPACE
    assert tags["aws:RequestTag/kubernetes-service-account"] == SERVICE_ACCOUNT
    assert tags["aws:RequestTag/eks-cluster-name"] == ["prod"]  # the EksClusterNames parameter, resolved
    assert {resource for action, resource in allowed if action.startswith("dynamodb:")} == {"LedgerTable"}
    [decrypt] = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert key_of(decrypt["Resource"]) == "stack key"
    assert (
        key_of(
            resources(("prod",), BROUGHT_KEY)["AdmissionWebhookRole"]["Properties"]["Policies"][0]["PolicyDocument"][
                "Statement"
            ][1]["Resource"]
        )
        == BROUGHT_KEY
    )
    assert sub_text(decrypt["Condition"]["StringEquals"]["kms:ViaService"]) == "dynamodb.${AWS::Region}.amazonaws.com"
    # The ledger's denies too, as every function's role has them; no other managed policy.
    assert role["ManagedPolicyArns"] == [{"Ref": "LedgerHistoryIsNeverDeletedPolicy"}]
    # Nothing in the template grants the role more (no other policy names it).
    others = {
        name
        for name, resource in resources(("prod",)).items()
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
        and _mentions(resource, "AdmissionWebhookRole")
    }
    assert others == set()
    associations = {
        name: r["Properties"]
        for name, r in resources(("prod", "stage-1")).items()
        if r["Type"] == "AWS::EKS::PodIdentityAssociation"
    }
    assert set(associations) == {"AdmissionPodIdentityprod", "AdmissionPodIdentitystage1"}
    for properties in associations.values():
        assert (properties["Namespace"], properties["ServiceAccount"]) == (NAMESPACE, SERVICE_ACCOUNT)
        assert arn_of(properties["RoleArn"]) == "AdmissionWebhookRole"
    assert sorted(p["ClusterName"] for p in associations.values()) == ["prod", "stage-1"]


def test_the_webhooks_image_repository_is_immutable_scanned_and_encrypted_with_the_key() -> None:
    repository = resources(("prod",))["AdmissionImageRepository"]
    properties = repository["Properties"]

    assert properties["ImageTagMutability"] == "IMMUTABLE"
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert properties["EncryptionConfiguration"]["EncryptionType"] == "KMS"
    assert key_of(properties["EncryptionConfiguration"]["KmsKey"]) == "stack key"
    assert (
        key_of(
            resources(("prod",), BROUGHT_KEY)["AdmissionImageRepository"]["Properties"]["EncryptionConfiguration"][
                "KmsKey"
            ]
        )
        == BROUGHT_KEY
    )
    # An image a cluster may still run is not deleted with the stack.
    assert repository["DeletionPolicy"] == "RetainExceptOnCreate"


def test_the_outputs_the_command_reads_are_the_templates() -> None:
    from tagwarden.cli.admission import REPOSITORY_OUTPUT, ROLE_OUTPUT, TABLE_ARN_OUTPUT

    assert {REPOSITORY_OUTPUT, ROLE_OUTPUT, TABLE_ARN_OUTPUT} <= set(template()["Outputs"])
