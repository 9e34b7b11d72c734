"""Read the stack's own resource definitions from template.yaml, so tests never keep a second schema."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
# The member accounts' template (organization deployments, a StackSet).
MEMBER_TEMPLATE = REPO_ROOT / "member" / "template.yaml"
# The member accounts' EKS audit-log subscriptions (a StackSet of their own).
CLUSTERS_TEMPLATE = REPO_ROOT / "member" / "clusters.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form intrinsics (`!Ref`, `!Sub`, ...) as plain maps."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The parsed template (the stack's, unless another is named: `MEMBER_TEMPLATE`)."""
    with path.open() as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return loaded


def resource_properties(logical_id: str) -> dict[str, Any]:
    """Properties of one resource of the template."""
    properties: dict[str, Any] = template()["Resources"][logical_id]["Properties"]
    return properties


def create_ledger_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the ledger table with the key schema and indexes the template declares."""
    properties = resource_properties("LedgerTable")
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    client.create_table(**kwargs)
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
