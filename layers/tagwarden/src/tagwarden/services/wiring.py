"""The composition root: builds the services from their adapters, for the functions and the command alike.

`compose_*` take the ledger table and the alert delivery they work with; the functions' `build_*` call
them with clients made from the Lambda environment and the alerts topic; the command (`cli.runtime`)
calls them with its own session's clients and a delivery that publishes or withholds. Each function
imports only its own service's modules: a handler's cold start must not pay for the others'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagwarden.adapters.aws_clients import AccountEcrClients, dynamodb_client, sns_client
from tagwarden.adapters.dynamodb.outbox import DynamoDbAlertOutbox
from tagwarden.adapters.dynamodb.table import LedgerTable
from tagwarden.adapters.sns_publisher import SnsAlertPublisher
from tagwarden.services.alert_delivery import AlertDelivery, DeliveryMode

if TYPE_CHECKING:
    from tagwarden.config import (
        AuditWatcherConfig,
        DetectionConfig,
        LedgerConfig,
        OrganizationConfig,
        PushGuardConfig,
        ScanRecorderConfig,
    )
    from tagwarden.events.audit import Home
    from tagwarden.ports import AlertPublisher, ManifestSource
    from tagwarden.services.audit_watcher import AuditWatcher
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.scan_recorder import ScanRecorder


def alert_delivery(
    table: LedgerTable, publisher: AlertPublisher, mode: DeliveryMode = DeliveryMode.PUBLISH
) -> AlertDelivery:
    """Alerts stored on the ledger's entries, delivered through `publisher`."""
    return AlertDelivery(DynamoDbAlertOutbox(table), publisher, mode)


def compose_push_guard(
    table: LedgerTable, delivery: AlertDelivery, config: DetectionConfig, manifests: ManifestSource | None = None
) -> PushGuard:
    """The push guard on a ledger table; with the registry's `manifests`, it records image indexes' platforms
    and settles same-second ties (without, indexes count as unscanned and ties go by event order)."""
    from tagwarden.adapters.dynamodb.tag_ledger import DynamoDbTagLedger
    from tagwarden.services.push_guard import PushGuard

    return PushGuard(DynamoDbTagLedger(table), delivery, config.tag_policy, manifests=manifests)


def compose_scan_recorder(table: LedgerTable, delivery: AlertDelivery, config: DetectionConfig) -> ScanRecorder:
    """The scan recorder on a ledger table."""
    from tagwarden.adapters.dynamodb.scan_ledger import DynamoDbScanLedger
    from tagwarden.services.scan_recorder import ScanRecorder

    return ScanRecorder(DynamoDbScanLedger(table), delivery, config.tag_policy, config.FAIL_SEVERITY)


def compose_audit_watcher(table: LedgerTable, delivery: AlertDelivery, config: DetectionConfig) -> AuditWatcher:
    """The audit watcher on a ledger table."""
    from tagwarden.adapters.dynamodb.deployment_ledger import DynamoDbDeploymentLedger
    from tagwarden.services.audit_watcher import AuditWatcher

    return AuditWatcher(DynamoDbDeploymentLedger(table), delivery, config.registry_scope)


def _deployed(config: LedgerConfig) -> tuple[LedgerTable, AlertDelivery]:
    """The deployed ledger table and the alerts topic, with clients from the Lambda environment."""
    table = LedgerTable(dynamodb_client(), config.LEDGER_TABLE_NAME)
    return table, alert_delivery(table, SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN))


def account_ecr_clients(config: OrganizationConfig) -> AccountEcrClients:
    """ECR clients per account: the stack's own credentials at home, the member read role elsewhere."""
    return AccountEcrClients(config.TAGWARDEN_ACCOUNT_ID, config.MEMBER_READ_ROLE_NAME)


def build_push_guard(config: PushGuardConfig) -> PushGuard:
    """The push guard on the deployed ledger table and alerts topic, reading manifests in each image's own
    registry (another account's through its member read role)."""
    from tagwarden.adapters.ecr_registry import OrganizationRegistries

    return compose_push_guard(*_deployed(config), config, OrganizationRegistries(account_ecr_clients(config)))


def build_scan_recorder(config: ScanRecorderConfig) -> ScanRecorder:
    """The scan recorder on the deployed ledger table and alerts topic."""
    return compose_scan_recorder(*_deployed(config), config)


def build_audit_watcher(config: AuditWatcherConfig) -> AuditWatcher:
    """The audit watcher on the deployed ledger table and alerts topic."""
    return compose_audit_watcher(*_deployed(config), config)


def home_of(config: OrganizationConfig) -> Home:
    """The stack's own account and region, which audit deliveries are told apart from."""
    from tagwarden.events.audit import Home

    return Home(config.TAGWARDEN_ACCOUNT_ID, config.AWS_REGION)
