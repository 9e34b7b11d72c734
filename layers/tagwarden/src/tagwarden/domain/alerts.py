"""The alert model: schema `tagwarden.alert.v1`, the one JSON shape every subscriber receives."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.domain.severity import Severity

ALERT_SCHEMA = "tagwarden.alert.v1"
SUBJECT_LIMIT = 100


class AlertType(StrEnum):
    """What was detected."""

    TAG_OVERWRITTEN = "TAG_OVERWRITTEN"
    TAG_MOVED_AFTER_SCAN = "TAG_MOVED_AFTER_SCAN"
    UNSCANNED_IMAGE_DEPLOYED = "UNSCANNED_IMAGE_DEPLOYED"
    VULNERABLE_IMAGE_DEPLOYED = "VULNERABLE_IMAGE_DEPLOYED"
    DEPLOYED_DIGEST_MISMATCH = "DEPLOYED_DIGEST_MISMATCH"
    TAG_PROTECTION_WEAKENED = "TAG_PROTECTION_WEAKENED"


RUNBOOKS: dict[AlertType, str] = {
    AlertType.TAG_OVERWRITTEN: (
        "Confirm with the image's owners that this push was intended; if not, restore the tag to the previous "
        "digest, revoke the pusher's credentials and check which workloads pulled the new digest."
    ),
    AlertType.TAG_MOVED_AFTER_SCAN: (
        "The scanned digest is no longer what the tag names: deploy the scanned digest by its digest, scan the "
        "new one, and find out who moved the tag."
    ),
    AlertType.UNSCANNED_IMAGE_DEPLOYED: (
        "Scan this digest now and check the workload; pin deployments to scanned digests "
        "(`tagwarden pin`) so an unscanned image cannot start."
    ),
    AlertType.VULNERABLE_IMAGE_DEPLOYED: (
        "The running digest failed its scan: roll the workload back to a passing digest and triage the findings."
    ),
    AlertType.DEPLOYED_DIGEST_MISMATCH: (
        "The kubelet runs a digest other than the one that was scanned: treat it as a possible compromise, "
        "isolate the pod, compare both digests and audit who pushed the tag."
    ),
    AlertType.TAG_PROTECTION_WEAKENED: (
        "A repository's settings now let a protected tag be overwritten: if the change was not agreed, make the "
        "repository's tags immutable again (`tagwarden posture` prints the command) and ask who changed it."
    ),
}


class KubernetesContext(BaseModel):
    """Where in a cluster a deployment finding was seen."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    namespace: str | None
    kind: str
    name: str
    user: str | None
    audit_id: str | None


class UsageSite(BaseModel):
    """A workload seen using the image, and when it was last seen."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    namespace: str
    workload: str
    last_seen: datetime


class Actor(BaseModel):
    """Who made the change, as CloudTrail recorded it (ECR's own events carry no identity)."""

    model_config = ConfigDict(frozen=True)

    arn: str | None
    identity_type: str | None
    principal: str | None
    account: str | None
    source_ip: str | None
    user_agent: str | None
    trail_event_id: str | None
    trail_event_time: datetime | None


class RevertStatus(StrEnum):
    """What became of an opt-in revert of an overwritten protected tag."""

    PENDING = "PENDING"
    REVERTED = "REVERTED"
    NOT_REVERTED = "NOT_REVERTED"


class RevertOutcome(BaseModel):
    """The revert's state when the alert was published, and why when it could not be done."""

    model_config = ConfigDict(frozen=True)

    status: RevertStatus
    detail: str


class Alert(BaseModel):
    """One finding, published as JSON. Field names and meanings are the documented schema v1."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: str = Field(default=ALERT_SCHEMA, alias="schema")
    alert_id: str
    type: AlertType
    severity: Severity
    summary: str
    detected_at: datetime
    event_time: datetime
    account: str | None
    region: str | None
    registry: str
    repository: str
    tag: str | None
    previous_digest: str | None = None
    current_digest: str | None = None
    scanned_digest: str | None = None
    scanned_at: datetime | None = None
    kubernetes: KubernetesContext | None = None
    in_use: tuple[UsageSite, ...] = ()
    evidence: tuple[str, ...] = ()
    runbook: str
    actor: Actor | None = None
    revert: RevertOutcome | None = None

    @property
    def subject(self) -> str:
        """A one-line e-mail subject within SNS's limit of 100 characters."""
        image = f"{self.repository}:{self.tag}" if self.tag else self.repository
        subject = f"[{self.severity}] {self.type} {image}"
        return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."

    def to_json(self) -> str:
        """The published message body."""
        return self.model_dump_json(by_alias=True)


def derive_alert_id(alert_type: AlertType, *finding: str | None) -> str:
    """A stable id: the same finding (type and identifying facts) always gets the same id."""
    material = "|".join([alert_type.value, *(part or "" for part in finding)])
    return "tw-" + hashlib.sha256(material.encode()).hexdigest()[:32]
