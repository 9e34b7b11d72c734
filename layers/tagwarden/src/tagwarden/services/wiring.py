"""Builds each function's service from its configuration, once per Lambda container, on first use.

Each builder imports only what its own function needs: a handler's cold start must not pay for the
other functions' modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagwarden.adapters.aws_clients import dynamodb_client, sns_client
from tagwarden.adapters.sns_publisher import SnsAlertPublisher

if TYPE_CHECKING:
    from tagwarden.config import AuditWatcherConfig, LedgerConfig, PushGuardConfig, ScanRecorderConfig
    from tagwarden.services.audit_watcher import AuditWatcher
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.scan_recorder import ScanRecorder


def _publisher(config: LedgerConfig) -> SnsAlertPublisher:
    return SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN)


def build_push_guard(config: PushGuardConfig) -> PushGuard:
    """The push guard on the deployed ledger table and alerts topic."""
    from tagwarden.adapters.dynamodb_ledger import DynamoDbLedger
    from tagwarden.services.push_guard import PushGuard

    ledger = DynamoDbLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    return PushGuard(ledger, _publisher(config), config.tag_policy)


def build_scan_recorder(config: ScanRecorderConfig) -> ScanRecorder:
    """The scan recorder on the deployed ledger table and alerts topic."""
    from tagwarden.adapters.dynamodb_ledger import DynamoDbLedger
    from tagwarden.services.scan_recorder import ScanRecorder

    ledger = DynamoDbLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    return ScanRecorder(ledger, _publisher(config), config.tag_policy, config.FAIL_SEVERITY)


def build_audit_watcher(config: AuditWatcherConfig) -> AuditWatcher:
    """The audit watcher on the deployed ledger table and alerts topic."""
    from tagwarden.adapters.dynamodb_deployments import DynamoDbDeploymentLedger
    from tagwarden.services.audit_watcher import AuditWatcher

    ledger = DynamoDbDeploymentLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    return AuditWatcher(ledger, _publisher(config), config.EXTRA_MONITORED_REGISTRIES)
