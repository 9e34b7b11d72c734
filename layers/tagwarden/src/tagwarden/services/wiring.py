"""The composition root: builds the services from their adapters, for the functions and the command alike.

`compose_*` take the ledger table and the alert delivery they work with; the functions' `build_*` call
them with clients made from the Lambda environment and the alerts topic; the command (`cli.runtime`)
calls them with its own session's clients and a delivery that publishes or withholds. Each function
imports only its own service's modules: a handler's cold start must not pay for the others'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagwarden.adapters.aws_clients import AccountEcrClients, dynamodb_client, ecr_client, sns_client, sqs_client
from tagwarden.adapters.dynamodb.outbox import DynamoDbAlertOutbox
from tagwarden.adapters.dynamodb.table import LedgerTable
from tagwarden.adapters.sns_publisher import SnsAlertPublisher
from tagwarden.services.alert_delivery import AlertDelivery, DeliveryMode

if TYPE_CHECKING:
    from tagwarden.config import (
        AdmissionConfig,
        AuditWatcherConfig,
        DetectionConfig,
        LedgerConfig,
        OrganizationConfig,
        PushGuardConfig,
        ScanRecorderConfig,
        TagReverterConfig,
        TrailWatcherConfig,
    )
    from tagwarden.events.audit import Home
    from tagwarden.ports import AlertPublisher, ManifestSource, TagRestorer
    from tagwarden.services.admission import AdmissionService, LineWriter
    from tagwarden.services.audit_watcher import AuditWatcher
    from tagwarden.services.push_guard import PushGuard, RevertHandoff
    from tagwarden.services.scan_recorder import ScanRecorder
    from tagwarden.services.tag_reverter import TagReverter
    from tagwarden.services.trail_watcher import TrailWatcher


def alert_delivery(
    table: LedgerTable, publisher: AlertPublisher, mode: DeliveryMode = DeliveryMode.PUBLISH
) -> AlertDelivery:
    """Alerts stored on the ledger's entries, delivered through `publisher`."""
    return AlertDelivery(DynamoDbAlertOutbox(table), publisher, mode)


def compose_push_guard(
    table: LedgerTable,
    delivery: AlertDelivery,
    config: DetectionConfig,
    manifests: ManifestSource | None = None,
    revert: RevertHandoff | None = None,
) -> PushGuard:
    """The push guard on a ledger table; with the registry's `manifests`, it records image indexes' platforms
    and settles same-second ties (without, indexes count as unscanned and ties go by event order); with
    `revert`, overwrites of protected tags in its scope are handed to the tag reverter."""
    from tagwarden.adapters.dynamodb.tag_ledger import DynamoDbTagLedger
    from tagwarden.services.push_guard import PushGuard

    return PushGuard(DynamoDbTagLedger(table), delivery, config.tag_policy, manifests=manifests, revert=revert)


def compose_tag_reverter(
    table: LedgerTable, delivery: AlertDelivery, config: TagReverterConfig, registry: TagRestorer
) -> TagReverter:
    """The tag reverter on a ledger table and a registry it may write to."""
    from tagwarden.adapters.dynamodb.revert_ledger import DynamoDbRevertLedger
    from tagwarden.services.tag_reverter import TagReverter

    return TagReverter(DynamoDbRevertLedger(table), registry, delivery, config.revert_scope, config.REVERT_MAX_ATTEMPTS)


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


# --- Alert sinks (issue 13) --------------------------------------------------------------------------
def alert_sinks(config: LedgerConfig) -> AlertPublisher:
    """The alerts topic, plus the chat topic and Security Hub when the template configured them: each an
    adapter behind `AlertPublisher`, called together (adapters.alert_sinks says what a partial failure does)."""
    from tagwarden.domain.alert_text import CommandScope

    # The commands alerts print name this stack, so they work as printed.
    # The alerts topic is the stack's: its ARN names the stack's account.
    scope = CommandScope(
        stack_name=config.TAGWARDEN_STACK_NAME, region=config.AWS_REGION, account=config.ALERTS_TOPIC_ARN.split(":")[4]
    )
    primary = SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN, scope)
    optional: dict[str, AlertPublisher] = {}
    if config.CHAT_TOPIC_ARN:
        from tagwarden.adapters.chat_publisher import ChatAlertPublisher

        optional["chat-topic"] = ChatAlertPublisher(sns_client(), config.CHAT_TOPIC_ARN, scope)
    if config.SECURITY_HUB_PRODUCT_ARN:
        from tagwarden.adapters.aws_clients import securityhub_client
        from tagwarden.adapters.securityhub_publisher import SecurityHubAlertPublisher

        optional["security-hub"] = SecurityHubAlertPublisher(
            securityhub_client(), config.SECURITY_HUB_PRODUCT_ARN, scope=scope
        )
    if not optional:
        return primary
    from tagwarden.adapters.alert_sinks import FanOutAlertPublisher

    return FanOutAlertPublisher(primary, optional)


def _deployed(config: LedgerConfig) -> tuple[LedgerTable, AlertDelivery]:
    """The deployed ledger table and the alert sinks, with clients from the Lambda environment."""
    table = LedgerTable(dynamodb_client(), config.LEDGER_TABLE_NAME)
    return table, alert_delivery(table, alert_sinks(config))


def account_ecr_clients(config: OrganizationConfig) -> AccountEcrClients:
    """ECR clients per account: the stack's own credentials at home, the member read role elsewhere."""
    return AccountEcrClients(config.TAGWARDEN_ACCOUNT_ID, config.MEMBER_READ_ROLE_NAME)


def build_push_guard(config: PushGuardConfig) -> PushGuard:
    """The push guard on the deployed ledger table and alerts topic, reading manifests in each image's own
    registry (another account's through its member read role), handing reverts over when they are on."""
    from tagwarden.adapters.ecr_registry import OrganizationRegistries

    revert = None
    if config.REVERT_PROTECTED_TAGS:
        from tagwarden.adapters.sqs_revert_requests import SqsRevertRequests
        from tagwarden.services.push_guard import RevertHandoff

        revert = RevertHandoff(config.revert_scope, SqsRevertRequests(sqs_client(), config.REVERT_QUEUE_URL))
    manifests = OrganizationRegistries(account_ecr_clients(config))
    return compose_push_guard(*_deployed(config), config, manifests, revert)


def build_tag_reverter(config: TagReverterConfig) -> TagReverter:
    """The tag reverter on the deployed ledger table and alerts topic, writing to ECR."""
    from tagwarden.adapters.ecr_restorer import EcrTagRestorer

    return compose_tag_reverter(*_deployed(config), config, EcrTagRestorer(ecr_client()))


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


# --- The admission webhook (an in-cluster server: reads the ledger, publishes nothing) -----------------


def compose_admission(
    table: LedgerTable, config: AdmissionConfig, write_line: LineWriter | None = None
) -> AdmissionService:
    """The admission service on a ledger table (decision lines to `write_line`, stdout by default)."""
    from tagwarden.adapters.dynamodb.admission_ledger import DynamoDbAdmissionLedger
    from tagwarden.domain.admission import AdmissionPolicy
    from tagwarden.services.admission import AdmissionService, stdout_line

    policy = AdmissionPolicy(config.registry_scope, config.ADMISSION_EXEMPT_NAMESPACES, config.ADMISSION_PIN_TEMPLATES)
    ledger = DynamoDbAdmissionLedger(table, config.ADMISSION_LEDGER_TIMEOUT_SECONDS)
    return AdmissionService(ledger, policy, write_line or stdout_line)


def build_admission(config: AdmissionConfig, write_line: LineWriter | None = None) -> AdmissionService:
    """The admission service on the deployed ledger, with a client whose timeouts fit the webhook's."""
    from tagwarden.adapters.aws_clients import admission_dynamodb_client

    client = admission_dynamodb_client(config.ADMISSION_LEDGER_TIMEOUT_SECONDS, config.AWS_REGION)
    return compose_admission(LedgerTable(client, config.LEDGER_TABLE_NAME), config, write_line)


def compose_trail_watcher(table: LedgerTable, delivery: AlertDelivery, config: DetectionConfig) -> TrailWatcher:
    """The trail watcher (CloudTrail's ECR calls: settings and who pushed) on a ledger table."""
    from tagwarden.adapters.dynamodb.trail_ledger import DynamoDbTrailLedger
    from tagwarden.services.trail_watcher import TrailWatcher

    return TrailWatcher(DynamoDbTrailLedger(table), delivery, config.tag_policy)


def build_trail_watcher(config: TrailWatcherConfig) -> TrailWatcher:
    """The trail watcher on the deployed ledger table and alerts topic."""
    return compose_trail_watcher(*_deployed(config), config)
