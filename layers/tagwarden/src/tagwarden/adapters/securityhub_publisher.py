"""Alerts imported into AWS Security Hub as ASFF findings (`BatchImportFindings`, the account's default product).

One alert is one finding, whose `Id` is derived from the alert id alone: a redelivered alert (a retry, a
duplicate event, a replay) updates the same finding instead of adding one. What a user decided stays decided:
- after a finding exists, `BatchImportFindings` ignores `Workflow` (and `Note`, `UserDefinedFields`,
  `VerificationState`): only `BatchUpdateFindings` (a person, a SOAR tool) changes them. We never send
  `Workflow`; Security Hub creates the finding `NEW`.
- Security Hub sets a `RESOLVED` or `NOTIFIED` finding back to `NEW` when its `RecordState` goes from
  `ARCHIVED` to `ACTIVE`. We always send `ACTIVE` and never archive, so that transition never happens.
- severity and types go in `FindingProviderFields` (the provider's fields); the top-level `Severity` and
  `Types` are required on the first import and, once a user has changed them, Security Hub keeps the user's.
- `CreatedAt` is when the alert was made; `UpdatedAt` is when it was (re)imported, so a later import (a
  redelivery) is newer than what Security Hub holds and applies. An alert is not sent again when CloudTrail
  names who pushed after it went out: the finding says "not yet known" and the command that shows it.
A situation that ends (tag back on the scanned digest, workload gone) raises no alert; one that comes back is
a new failing episode with a new alert id, hence a new finding, and never reopens the one a user resolved.
Sources: https://docs.aws.amazon.com/securityhub/latest/userguide/finding-update-batchimportfindings.html
and https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_Workflow.html
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tagwarden.clock import iso, utcnow
from tagwarden.domain.alert_text import (
    NO_STACK,
    TYPE_TITLES,
    CommandScope,
    finding_text,
    image_reference,
    look_closer_advice,
    look_closer_commands,
    names_ok,
    who_changed,
)
from tagwarden.domain.alerts import Alert, AlertType
from tagwarden.domain.tag_protection import created_by_template
from tagwarden.ports import AlertDeliveryError

if TYPE_CHECKING:
    from mypy_boto3_securityhub import SecurityHubClient

ASFF_SCHEMA_VERSION = "2018-10-08"
# ASFF's documented maximum lengths.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 1024
RECOMMENDATION_LIMIT = 512
PRODUCT_FIELD_VALUE_LIMIT = 2048
# Security Hub takes at most 32 resources per finding; the image and cluster come first.
RESOURCE_LIMIT = 32
_PRODUCT_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):securityhub:(?P<region>[\w-]+):(?P<account>\d{12}):product/(?P=account)/default$"
)

# `namespace/category/classifier`, from ASFF's types taxonomy.
_BEST_PRACTICES = "Software and Configuration Checks/AWS Security Best Practices/"
FINDING_TYPES: dict[AlertType, str] = {
    AlertType.TAG_OVERWRITTEN: "Unusual Behaviors/Container/Protected tag overwritten",
    AlertType.TAG_MOVED_AFTER_SCAN: "Unusual Behaviors/Container/Tag moved after scan",
    AlertType.UNSCANNED_IMAGE_DEPLOYED: _BEST_PRACTICES + "Unscanned image deployed",
    AlertType.VULNERABLE_IMAGE_DEPLOYED: "Software and Configuration Checks/Vulnerabilities/CVE",
    AlertType.DEPLOYED_DIGEST_MISMATCH: "Effects/Data Integrity/Running digest differs from scanned digest",
    AlertType.TAG_PROTECTION_WEAKENED: _BEST_PRACTICES + "Tag immutability weakened",
}


class ProductArnError(ValueError):
    """The configured product ARN is not an account's default Security Hub product."""


def hub_of(product_arn: str) -> tuple[str, str, str]:
    """Partition, region and account of `arn:<partition>:securityhub:<region>:<account>:product/<account>/default`."""
    match = _PRODUCT_ARN.match(product_arn)
    if not match:
        raise ProductArnError(f"not a default Security Hub product ARN: {product_arn!r}")
    return match["partition"], match["region"], match["account"]


def finding_id(product_arn: str, alert_id: str) -> str:
    """The finding's Id: one per alert id (and per hub), whatever delivery imports it."""
    return f"{product_arn}/tagwarden/{alert_id}"


def asff_finding(
    alert: Alert, product_arn: str, imported_at: datetime | None = None, scope: CommandScope = NO_STACK
) -> dict[str, Any]:
    """The alert as an ASFF finding for the default product of the Tagwarden account, imported at
    `imported_at` (default: when the alert was made). Outside text is `finding_text`; commands are exact."""
    partition, region, account = hub_of(product_arn)
    severity = {"Label": alert.severity.value}
    types = [FINDING_TYPES[alert.type]]
    fields = {
        "tagwarden/AlertId": alert.alert_id,
        "tagwarden/AlertType": alert.type.value,
        "tagwarden/Schema": alert.schema_,
        "tagwarden/Image": _reference(alert, 512),
    }
    for number, command in enumerate(look_closer_commands(alert, scope), start=1):
        fields[f"tagwarden/LookCloser{number}"] = command
    advice = look_closer_advice(alert, scope)
    if advice is not None:
        fields["tagwarden/LookCloser"] = finding_text(advice, 1000)
    who = who_changed(alert, scope)
    if who is not None:
        fields["tagwarden/WhoPushed"] = finding_text(who.text, 1000) + (f" {who.command}" if who.command else "")
    if alert.revert is not None:
        fields["tagwarden/Revert"] = f"{alert.revert.status}: {finding_text(alert.revert.detail, 1000)}"
    title = f"{TYPE_TITLES[alert.type]}: {_reference(alert, 200)}"
    return {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": finding_id(product_arn, alert.alert_id),
        "ProductArn": product_arn,
        "ProductName": "Tagwarden",
        "CompanyName": "Tagwarden",
        "GeneratorId": f"tagwarden/{alert.type.value}",
        "AwsAccountId": account,
        "Region": region,
        "Types": types,
        "FirstObservedAt": iso(alert.event_time),
        "CreatedAt": iso(alert.detected_at),
        "UpdatedAt": iso(max(imported_at or alert.detected_at, alert.detected_at)),
        "Severity": severity,
        "FindingProviderFields": {"Severity": severity, "Types": types},
        "Title": title[:TITLE_LIMIT],
        "Description": finding_text(alert.summary, DESCRIPTION_LIMIT),
        "Remediation": {"Recommendation": {"Text": finding_text(alert.runbook, RECOMMENDATION_LIMIT)}},
        "ProductFields": {key: value[:PRODUCT_FIELD_VALUE_LIMIT] for key, value in fields.items()},
        "Resources": _resources(alert, partition, region, account)[:RESOURCE_LIMIT],
        "RecordState": "ACTIVE",
    }


def _reference(alert: Alert, limit: int) -> str:
    """The image reference, exact when its names pass the grammar (`names_ok`; copied, compared with
    Inspector's), else inert."""
    reference = image_reference(alert)
    return reference if names_ok(alert) and len(reference) <= limit else finding_text(reference, limit)


def _cluster_home(name: str, region: str, account: str) -> tuple[str, str, str]:
    """The cluster's account, region and name: an organization cluster's name is `account:region:name` (its
    own account and region); a bare name is a cluster of the Tagwarden account and region."""
    parts = name.split(":")
    if len(parts) == 3 and re.fullmatch(r"\d{12}", parts[0]) and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", parts[1]):
        return parts[0], parts[1], parts[2]
    return account, region, name


def _resources(alert: Alert, partition: str, region: str, account: str) -> list[dict[str, Any]]:
    resources = [_image_resource(alert, partition, region)]
    if alert.kubernetes is not None:
        k8s = alert.kubernetes
        cluster = finding_text(k8s.cluster, 100)
        home_account, home_region, name = _cluster_home(cluster, region, account)
        resources.append(
            {
                "Type": "AwsEksCluster",
                "Id": f"arn:{partition}:eks:{home_region}:{home_account}:cluster/{name}",
                "Partition": partition,
                "Region": home_region,
                "Details": {"AwsEksCluster": {"Name": name}},
            }
        )
        resources.append(_workload(cluster, k8s.namespace or "-", f"{k8s.kind}/{k8s.name}", partition, region))
    for site in alert.in_use:
        resources.append(_workload(finding_text(site.cluster, 100), site.namespace, site.workload, partition, region))
    return resources


def _workload(cluster: str, namespace: str, workload: str, partition: str, region: str) -> dict[str, Any]:
    return {
        "Type": "Other",
        # Not an AWS resource: named `kubernetes/<cluster>/<namespace>/<workload>` (no scheme, nothing to click).
        "Id": finding_text(f"kubernetes/{cluster}/{namespace}/{workload}", 512),
        "Partition": partition,
        "Region": region,
    }


def _image_resource(alert: Alert, partition: str, hub_region: str) -> dict[str, Any]:
    digest = alert.current_digest or alert.scanned_digest or alert.previous_digest
    if alert.account is None or alert.region is None:
        # Not an ECR image (another registry the audit watcher checks): no ECR ARN to give.
        return {
            "Type": "Other",
            "Id": _reference(alert, 512),
            "Partition": partition,
            "Region": hub_region,
        }
    repository_arn = f"arn:{partition}:ecr:{alert.region}:{alert.account}:repository/{alert.repository}"
    if alert.type is AlertType.TAG_PROTECTION_WEAKENED:
        # A setting, not an image: the repository, or a creation template (which ASFF has no type for).
        if created_by_template(alert):
            return {
                "Type": "Other",
                "Id": finding_text(
                    f"ecr-repository-creation-template/{alert.account}/{alert.region}/{alert.repository}", 512
                ),
                "Partition": partition,
                "Region": alert.region,
            }
        return {
            "Type": "AwsEcrRepository",
            "Id": repository_arn,
            "Partition": partition,
            "Region": alert.region,
            "Details": {"AwsEcrRepository": {"Arn": repository_arn, "RepositoryName": alert.repository}},
        }
    details: dict[str, Any] = {"RegistryId": alert.account, "RepositoryName": alert.repository}
    if digest:
        details["ImageDigest"] = digest
    if alert.tag:
        details["ImageTags"] = [alert.tag]
    return {
        "Type": "AwsEcrContainerImage",
        # Amazon Inspector names ECR images the same way, so both findings point at one resource.
        "Id": f"{repository_arn}/{digest}" if digest else repository_arn,
        "Partition": partition,
        "Region": alert.region,
        "Details": {"AwsEcrContainerImage": details},
    }


# Errors that no retry can fix: Security Hub is not enabled in the account or region, or the role may not
# import. They are logged and counted (an alarm), and the alert still counts as delivered elsewhere.
PERMANENT_ERRORS = frozenset({"InvalidAccessException", "AccessDeniedException", "InvalidInputException"})
# Per-finding error codes of a request that succeeded but refused the finding itself.
REJECTED_FINDING_CODES = frozenset({"InvalidInput", "AccessDenied", "FindingSizeExceeded"})


class SecurityHubAlertPublisher:
    """Imports each alert as a finding of the Tagwarden account's default Security Hub product."""

    def __init__(
        self,
        client: SecurityHubClient,
        product_arn: str,
        clock: Callable[[], datetime] = utcnow,
        scope: CommandScope = NO_STACK,
    ) -> None:
        hub_of(product_arn)  # fail at cold start on a wrong ARN, not on the first alert
        self._client = client
        self._product_arn = product_arn
        self._clock = clock
        self._scope = scope

    def publish(self, alert: Alert, skip: frozenset[str] = frozenset()) -> None:
        """Import (or re-import, unchanged) the alert's finding. (One destination: `skip` is the fan-out's.)"""
        from tagwarden.adapters.aws_clients import error_code, publish_errors
        from tagwarden.ports import AlertRejectedError

        # A plain dict, as ASFF is JSON.
        finding: Any = asff_finding(alert, self._product_arn, self._clock(), self._scope)
        try:
            response = self._client.batch_import_findings(Findings=[finding])
        except publish_errors() as error:
            if error_code(error) in PERMANENT_ERRORS:
                raise AlertRejectedError(f"Security Hub refused alert {alert.alert_id}: {error}") from error
            raise AlertDeliveryError(f"alert {alert.alert_id} was not imported into Security Hub: {error}") from error
        failed = response.get("FailedFindings", [])
        if not failed:
            return
        if {item.get("ErrorCode", "") for item in failed} <= REJECTED_FINDING_CODES:
            # A finding Security Hub rejects as invalid would be rejected again: say so, do not retry.
            raise AlertRejectedError(f"Security Hub rejected alert {alert.alert_id}: {failed[0]}")
        raise AlertDeliveryError(f"alert {alert.alert_id} was not imported into Security Hub: {failed[0]}")
