"""`tagwarden preflight` on moto: EKS clusters and their audit log groups as a deploy would find them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from tagwarden.cli.errors import CliError, ExitCode
from tagwarden.cli.main import app
from tagwarden.cli.preflight import (
    NotReady,
    check_clusters,
    parse_cluster_names,
    stack_filter_name,
)
from typer.testing import CliRunner, Result

from tests.support.stack import REGION

STACK = "tagwarden"
AUDIT_ON = {"clusterLogging": [{"types": ["api", "audit"], "enabled": True}]}
AUDIT_OFF = {"clusterLogging": [{"types": ["api", "audit"], "enabled": False}]}


class Account:
    """EKS clusters, their log groups and subscription filters, in moto's account and REGION."""

    def __init__(self) -> None:
        # Any: this project installs no EKS or CloudWatch Logs type stubs (as in tagwarden.cli.preflight).
        self.eks: Any = boto3.client("eks", region_name=REGION)
        self.logs: Any = boto3.client("logs", region_name=REGION)
        kinesis = boto3.client("kinesis", region_name=REGION)
        # Another tool's destination for the filters that are not the stack's (moto checks it exists).
        kinesis.create_stream(StreamName="siem", ShardCount=1)
        self.destination = kinesis.describe_stream(StreamName="siem")["StreamDescription"]["StreamARN"]

    def cluster(
        self, name: str, logging: dict[str, Any], *, log_group: bool = True, filters: tuple[str, ...] = ()
    ) -> None:
        self.eks.create_cluster(
            name=name,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
            logging=logging,
        )
        if log_group:
            self.logs.create_log_group(logGroupName=f"/aws/eks/{name}/cluster")
        for filter_name in filters:
            self.logs.put_subscription_filter(
                logGroupName=f"/aws/eks/{name}/cluster",
                filterName=filter_name,
                filterPattern="",
                destinationArn=self.destination,
                roleArn="arn:aws:iam::123456789012:role/logs",
            )


@pytest.fixture
def account() -> Iterator[Account]:
    with mock_aws():
        yield Account()


def preflight(*args: str) -> Result:
    """`tagwarden preflight` as users run it."""
    result = CliRunner().invoke(app, ["preflight", *args, "--region", REGION])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# --- the check ----------------------------------------------------------------------------------------


def test_each_cluster_gets_its_first_problem_in_the_order_a_deploy_meets_them(account: Account) -> None:
    account.cluster("prod", AUDIT_ON, filters=("datadog",))
    account.cluster("quiet", AUDIT_OFF)
    account.cluster("fresh", AUDIT_ON, log_group=False)
    account.cluster("busy", AUDIT_ON, filters=("datadog", "splunk"))

    results = check_clusters(account.eks, account.logs, ["prod", "elsewhere", "quiet", "fresh", "busy"])

    verdicts = {result.cluster: result.problem for result in results}
    assert [result.cluster for result in results] == ["prod", "elsewhere", "quiet", "fresh", "busy"]
    assert verdicts == {
        "prod": None,
        "elsewhere": NotReady.CLUSTER_NOT_FOUND,
        "quiet": NotReady.AUDIT_LOGGING_OFF,
        "fresh": NotReady.LOG_GROUP_MISSING,
        "busy": NotReady.NO_FREE_FILTER_SLOT,
    }
    reasons = {result.cluster: result.reason for result in results}
    assert REGION in reasons["elsewhere"]
    assert "update-cluster-config --name quiet" in reasons["quiet"]
    assert "/aws/eks/fresh/cluster does not exist" in reasons["fresh"]
    assert "datadog, splunk" in reasons["busy"]


def test_audit_logging_off_is_not_ready_even_when_the_log_group_is_still_there(account: Account) -> None:
    # Logging was on once (the group exists) and is off now: a filter would deploy and receive nothing.
    account.cluster("was-on", AUDIT_OFF, log_group=True)

    [result] = check_clusters(account.eks, account.logs, ["was-on"])

    assert result.problem is NotReady.AUDIT_LOGGING_OFF


def test_the_stacks_own_filter_does_not_take_a_slot(account: Account) -> None:
    # A re-deploy updates the stack's filter in place (same name): one other filter still leaves room.
    account.cluster("prod", AUDIT_ON, filters=("datadog", stack_filter_name(STACK)))

    [own] = check_clusters(account.eks, account.logs, ["prod"], stack_filter_name(STACK))
    [other_stack] = check_clusters(account.eks, account.logs, ["prod"], stack_filter_name("tagwarden-staging"))

    assert own.ready
    assert own.other_filters == ("datadog",)
    assert other_stack.problem is NotReady.NO_FREE_FILTER_SLOT


def test_cluster_names_split_as_cloudformation_splits_a_comma_delimited_list() -> None:
    assert parse_cluster_names("") == []
    assert parse_cluster_names("prod, stage_2 ,a-b") == ["prod", "stage_2", "a-b"]


@pytest.mark.parametrize(
    "text", ["prod,", ",prod", "prod,,stage", "prod, ,stage", "-prod", "prod stage", "prod,prod", "prod-1,prod_1"]
)
def test_empty_entries_and_bad_names_are_usage_errors(text: str) -> None:
    with pytest.raises(CliError) as raised:
        parse_cluster_names(text)
    assert raised.value.code is ExitCode.USAGE


# --- the command --------------------------------------------------------------------------------------


def test_all_ready_exits_0(account: Account) -> None:
    account.cluster("prod", AUDIT_ON)
    account.cluster("stage", AUDIT_ON, filters=("datadog",))

    result = preflight("--clusters", "prod,stage")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["  prod   ready", "  stage  ready"]


def test_a_cluster_not_ready_exits_1_and_says_which_and_why(account: Account) -> None:
    account.cluster("prod", AUDIT_ON)
    account.cluster("quiet", AUDIT_OFF)

    result = preflight("--clusters", "prod,quiet", "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ready"] is False
    assert [(c["cluster"], c["ready"], c["problem"]) for c in report["clusters"]] == [
        ("prod", True, None),
        ("quiet", False, "audit_logging_off"),
    ]
    assert report["clusters"][1]["log_group"] == "/aws/eks/quiet/cluster"


def test_people_get_one_line_per_cluster_with_the_reason(account: Account) -> None:
    account.cluster("prod", AUDIT_ON)
    account.cluster("busy", AUDIT_ON, filters=("datadog", "splunk"))

    result = preflight("--clusters", "prod,busy")

    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"EKS clusters in {REGION}, for the stack's audit log subscriptions:",
        "  prod  ready",
        "  busy  NOT READY: log group /aws/eks/busy/cluster already has 2 subscription filters of other owners "
        "(datadog, splunk); CloudWatch Logs allows 2",
    ]


def test_stack_name_reads_the_stacks_cluster_names_and_owns_its_filters(account: Account) -> None:
    account.cluster("prod", AUDIT_ON, filters=("datadog", stack_filter_name(STACK)))
    account.cluster("stage", AUDIT_ON, log_group=False)
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {
                # String, not the template's CommaDelimitedList: DescribeStacks returns "prod,stage" for
                # both, but moto 5.2 returns a list's Python repr for the latter.
                "Parameters": {"EksClusterNames": {"Type": "String"}},
                "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            }
        ),
        Parameters=[{"ParameterKey": "EksClusterNames", "ParameterValue": "prod,stage"}],
    )

    result = preflight("--stack-name", STACK, "--json")

    assert result.exit_code == 1, result.output
    assert [(c["cluster"], c["problem"]) for c in json.loads(result.stdout)["clusters"]] == [
        ("prod", None),
        ("stage", "log_group_missing"),
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "pass --clusters"),
        (("--clusters", "prod,"), "empty entry"),
        (("--stack-name", "nonesuch"), "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line(account: Account, args: tuple[str, ...], fragment: str) -> None:
    result = preflight(*args)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("tagwarden: error: ")
    assert fragment in result.stderr


def test_no_clusters_is_ready(account: Account) -> None:
    result = preflight("--clusters", "")

    assert result.exit_code == 0, result.output
    assert "no EKS clusters" in result.stdout
