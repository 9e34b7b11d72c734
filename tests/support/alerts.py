"""One realistic alert of every type (schema v1), for the renderings' tests and the rendering demo."""

from __future__ import annotations

from datetime import UTC, datetime

from tagwarden.domain.alerts import (
    RUNBOOKS,
    Actor,
    Alert,
    AlertType,
    KubernetesContext,
    RevertOutcome,
    RevertStatus,
    UsageSite,
    derive_alert_id,
)
from tagwarden.domain.severity import Severity

ACCOUNT = "111122223333"
REGION = "eu-west-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SCANNED = "sha256:" + "a" * 64
PUSHED = "sha256:" + "b" * 64
DETECTED = datetime(2026, 11, 30, 4, 12, 9, tzinfo=UTC)
EVENT = datetime(2026, 11, 30, 4, 12, 7, tzinfo=UTC)
ACTOR = Actor(
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/gitlab-runner-42",
    identity_type="AssumedRole",
    principal="ci-deployer/gitlab-runner-42",
    account=ACCOUNT,
    source_ip="198.51.100.23",
    user_agent="aws-sdk-go-v2/1.30.3",
    trail_event_id="3e2a6a1c-0d5b-4a2e-9f49-1c1d7c2b4f10",
    trail_event_time=EVENT,
)
KUBERNETES = KubernetesContext(
    cluster="prod-eu",
    namespace="shop",
    kind="Deployment",
    name="api",
    user="system:serviceaccount:argocd:argocd-application-controller",
    audit_id="6c1f2e8a-8b0e-4d0f-a2a5-0f4f0d6e9b21",
)
IN_USE = (UsageSite(cluster="prod-eu", namespace="shop", workload="deployment/api", last_seen=EVENT),)


def _alert(alert_type: AlertType, severity: Severity, summary: str, **fields: object) -> Alert:
    values: dict[str, object] = {
        "alert_id": derive_alert_id(alert_type, REGISTRY, "shop/api", "v1.4.2", PUSHED),
        "type": alert_type,
        "severity": severity,
        "summary": summary,
        "detected_at": DETECTED,
        "event_time": EVENT,
        "account": ACCOUNT,
        "region": REGION,
        "registry": REGISTRY,
        "repository": "shop/api",
        "tag": "v1.4.2",
        "evidence": ("0d8e6f1c-2b1f-4a4e-8c3b-5e2d1f0a9c77",),
        "runbook": RUNBOOKS[alert_type],
    }
    values.update(fields)
    return Alert.model_validate(values)


def sample_alerts() -> dict[AlertType, Alert]:
    """One alert of each type, with the fields each type carries."""
    return {
        AlertType.TAG_OVERWRITTEN: _alert(
            AlertType.TAG_OVERWRITTEN,
            Severity.HIGH,
            "Protected tag shop/api:v1.4.2 was overwritten; the content it named was never scanned.",
            previous_digest=SCANNED,
            current_digest=PUSHED,
            in_use=IN_USE,
        ),
        AlertType.TAG_MOVED_AFTER_SCAN: _alert(
            AlertType.TAG_MOVED_AFTER_SCAN,
            Severity.CRITICAL,
            "Protected tag shop/api:v1.4.2 moved away from its scanned digest to an unscanned one.",
            previous_digest=SCANNED,
            current_digest=PUSHED,
            scanned_digest=SCANNED,
            scanned_at=EVENT,
            in_use=IN_USE,
            actor=ACTOR,
            revert=RevertOutcome(status=RevertStatus.REVERTED, detail="tag put back on the scanned digest"),
        ),
        AlertType.UNSCANNED_IMAGE_DEPLOYED: _alert(
            AlertType.UNSCANNED_IMAGE_DEPLOYED,
            Severity.HIGH,
            "Deployment shop/api in cluster prod-eu deploys shop/api:v1.4.2, whose digest has no completed scan.",
            current_digest=PUSHED,
            kubernetes=KUBERNETES,
        ),
        AlertType.VULNERABLE_IMAGE_DEPLOYED: _alert(
            AlertType.VULNERABLE_IMAGE_DEPLOYED,
            Severity.CRITICAL,
            "A rescan failed shop/api:v1.4.2 (2 CRITICAL findings) while deployment/api in prod-eu runs it.",
            current_digest=SCANNED,
            scanned_digest=SCANNED,
            scanned_at=EVENT,
            in_use=IN_USE,
        ),
        AlertType.DEPLOYED_DIGEST_MISMATCH: _alert(
            AlertType.DEPLOYED_DIGEST_MISMATCH,
            Severity.CRITICAL,
            "Pod api-7d9f in prod-eu/shop runs an unscanned digest; the tag it started from named a scanned one.",
            previous_digest=SCANNED,
            current_digest=PUSHED,
            scanned_digest=SCANNED,
            scanned_at=EVENT,
            kubernetes=KUBERNETES.model_copy(update={"kind": "Pod", "name": "api-7d9f"}),
        ),
        AlertType.TAG_PROTECTION_WEAKENED: _alert(
            AlertType.TAG_PROTECTION_WEAKENED,
            Severity.HIGH,
            "Repository shop/api now allows its protected tags to be overwritten (tag immutability turned off).",
            tag=None,
        ),
    }
