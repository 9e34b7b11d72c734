"""A deployed Tagwarden stack's outputs (`template.yaml` Outputs), read with CloudFormation DescribeStacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tagwarden.ports import TagwardenError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

LEDGER_TABLE_OUTPUT = "LedgerTableName"
ALERTS_TOPIC_OUTPUT = "AlertsTopicArn"
# The stack parameters the functions receive as these environment variables (template.yaml Globals).
POLICY_PARAMETERS = {
    "ProtectedTagPatterns": "PROTECTED_TAG_PATTERNS",
    "MutableTagPatterns": "MUTABLE_TAG_PATTERNS",
    "SignatureTagPatterns": "SIGNATURE_TAG_PATTERNS",
    "FailSeverity": "FAIL_SEVERITY",
    "ExtraMonitoredRegistries": "EXTRA_MONITORED_REGISTRIES",
    "ExcludedImagePrefixes": "EXCLUDED_IMAGE_PREFIXES",
}


class StackNotFoundError(TagwardenError):
    """No stack of that name exists in the account and region."""


class StackUnavailableError(TagwardenError):
    """CloudFormation could not be read (after the client's own retries)."""


def read_stack(client: CloudFormationClient, stack_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's outputs by key (`LedgerTableName`, ...) and its parameters by key (`EksClusterNames`, ...)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = client.describe_stacks(StackName=stack_name).get("Stacks", [])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        # CloudFormation reports a missing stack as a ValidationError "Stack with id ... does not exist".
        if code == "ValidationError" and "does not exist" in message:
            raise StackNotFoundError(f"stack {stack_name!r} does not exist") from error
        raise StackUnavailableError(f"DescribeStacks failed: {code or error}") from error
    except BotoCoreError as error:
        raise StackUnavailableError(f"DescribeStacks failed: {error}") from error
    if not stacks:
        raise StackNotFoundError(f"stack {stack_name!r} does not exist")
    outputs = {
        output["OutputKey"]: output["OutputValue"]
        for output in stacks[0].get("Outputs", [])
        if "OutputKey" in output and "OutputValue" in output
    }
    parameters = {
        parameter["ParameterKey"]: parameter["ParameterValue"]
        for parameter in stacks[0].get("Parameters", [])
        if "ParameterKey" in parameter and "ParameterValue" in parameter
    }
    return outputs, parameters


def policy_variables(parameters: Mapping[str, str]) -> dict[str, str]:
    """The functions' policy variables that the stack's parameters set (as the template's Globals do)."""
    return {variable: parameters[name] for name, variable in POLICY_PARAMETERS.items() if name in parameters}
