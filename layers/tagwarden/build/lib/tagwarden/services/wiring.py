"""Builds each function's service from its configuration, once per Lambda container, on first use."""

from __future__ import annotations

from tagwarden.adapters.aws_clients import dynamodb_client, sns_client
from tagwarden.adapters.dynamodb_deployments import DynamoDbDeploymentLedger
from tagwarden.adapters.dynamodb_ledger import DynamoDbLedger
from tagwarden.adapters.sns_publisher import SnsAlertPublisher
from tagwarden.config import AuditWatcherConfig, PushGuardConfig, ScanRecorderConfig
from tagwarden.services.audit_watcher import AuditWatcher
from tagwarden.services.push_guard import PushGuard
from tagwarden.services.scan_recorder import ScanRecorder


def build_push_guard(config: PushGuardConfig) -> PushGuard:
    """The push guard on the deployed ledger table and alerts topic."""
    ledger = DynamoDbLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    publisher = SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN)
    return PushGuard(ledger, publisher, config.tag_policy)


def build_scan_recorder(config: ScanRecorderConfig) -> ScanRecorder:
    """The scan recorder on the deployed ledger table and alerts topic."""
    ledger = DynamoDbLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    publisher = SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN)
    return ScanRecorder(ledger, publisher, config.tag_policy, config.FAIL_SEVERITY)


def build_audit_watcher(config: AuditWatcherConfig) -> AuditWatcher:
    """The audit watcher on the deployed ledger table and alerts topic."""
    ledger = DynamoDbDeploymentLedger(dynamodb_client(), config.LEDGER_TABLE_NAME)
    publisher = SnsAlertPublisher(sns_client(), config.ALERTS_TOPIC_ARN)
    return AuditWatcher(ledger, publisher, config.EXTRA_MONITORED_REGISTRIES)
