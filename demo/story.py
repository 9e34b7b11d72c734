"""The attack, told as the events AWS would deliver: registry pushes, scans and EKS audit lines."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.support.admission import admission_review
from tests.support.audit import ECR, audit_line, envelope, kubelet_status
from tests.support.events import ecr_image_action, ecr_scan

# The two images of the story: what CI built and scanned, and what the attacker pushed.
SCANNED = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
ATTACKER = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
REPOSITORY = "shop/api"
LATEST = f"{ECR}/{REPOSITORY}:latest"


@dataclass(frozen=True)
class Step:
    """One thing that happens: who does it, what it is, and the event that reaches Tagwarden."""

    act: str
    actor: str
    what: str
    function: str
    event: dict[str, Any]
    # For the admission webhook: the mode of the namespace (the path the review is POSTed to).
    mode: str = "enforce"


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert the security team must receive."""

    type: AlertType
    severity: Severity
    tag: str


def _rescheduled_pod() -> dict[str, Any]:
    """The ReplicaSet controller recreates the pod on another node (same template: `:latest`)."""
    line = copy.deepcopy(audit_line("pod_create_request_response.json"))
    line["auditID"] = "5b0e7c2a-93d1-4f6e-8a47-2d91c3e8f015"
    line["responseObject"]["metadata"]["name"] = "api-7d9f8c6b5d-r4w8n"
    line["stageTimestamp"] = "2026-11-20T10:20:04.118230Z"
    return line


def _pod_review(uid: str) -> dict[str, Any]:
    """The AdmissionReview of the ReplicaSet controller creating a pod from `shop/api:latest` (generateName only)."""
    review = admission_review("pod_create_generate_name")
    review["request"]["uid"] = uid
    return review


def _event_id(name: str) -> str:
    """A stable EventBridge event id, so that the ledger (and `make try`'s output) is the same on every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://tagwarden.invalid/demo/{name}"))


def story() -> list[Step]:
    """The timeline, in the order the events arrive."""
    return [
        Step("1", "CI", "pushes shop/api:1.4.0", "push_guard",
             ecr_image_action(tag="1.4.0", digest=SCANNED, time="2026-11-20T09:14:07Z",
                              event_id=_event_id("ci-push-1.4.0"))),
        Step("1", "CI", "pushes shop/api:latest (same image)", "push_guard",
             ecr_image_action(tag="latest", digest=SCANNED, time="2026-11-20T09:14:08Z",
                              event_id=_event_id("ci-push-latest"))),
        Step("1", "ECR", "basic scan completes: 2 HIGH, 7 MEDIUM, no CRITICAL (pass)", "scan_recorder",
             ecr_scan(digest=SCANNED, tags=["1.4.0", "latest"], time="2026-11-20T09:14:52Z",
                      counts={"HIGH": 2, "MEDIUM": 7}, event_id=_event_id("ecr-scan"))),
        Step("2", "API server", "asks the webhook (enforce) about the new pod: pinned to the scanned digest",
             "admission", _pod_review("0df28fbd-5f5f-11e8-bc74-36e6bb280816")),
        Step("2", "deployer", "creates Deployment shop/api with shop/api:latest", "audit_watcher",
             envelope([audit_line("deployment_create.json"), audit_line("pod_create_request_response.json")])),
        Step("2", "kubelet", "node ip-10-42-48-91 pulls the scanned digest and starts the pod", "audit_watcher",
             envelope([kubelet_status("api-7d9f8c6b5d-x2k9p", LATEST, f"{ECR}/shop/api@{SCANNED}", "c1")])),
        Step("3", "attacker", "pushes a different image as shop/api:latest", "push_guard",
             ecr_image_action(tag="latest", digest=ATTACKER, time="2026-11-20T10:02:31Z",
                              event_id=_event_id("attacker-push-latest"))),
        Step("3", "attacker", "deletes the protected tag shop/api:1.4.0 (immutability workaround)", "push_guard",
             ecr_image_action(tag="1.4.0", digest=SCANNED, action="DELETE", time="2026-11-20T10:03:10Z",
                              event_id=_event_id("attacker-delete-1.4.0"))),
        Step("3", "attacker", "pushes the same image as shop/api:1.4.0", "push_guard",
             ecr_image_action(tag="1.4.0", digest=ATTACKER, time="2026-11-20T10:03:12Z",
                              event_id=_event_id("attacker-push-1.4.0"))),
        Step("4", "API server", "asks the webhook (enforce) about the rescheduled pod: denied", "admission",
             _pod_review("5b0e7c2a-93d1-4f6e-8a47-2d91c3e8f015")),
        Step("4", "API server", "the same pod where the namespace is in warn mode: allowed, with a warning",
             "admission", _pod_review("6c1f8d3b-a4e2-4f7a-9b58-3ea2d4f9a026"), mode="warn"),
        Step("4", "scheduler", "(warn mode) the pod is rescheduled from shop/api:latest", "audit_watcher",
             envelope([_rescheduled_pod()])),
        Step("4", "kubelet", "node ip-10-42-61-17 pulls shop/api:latest: the attacker's digest", "audit_watcher",
             envelope([kubelet_status("api-7d9f8c6b5d-r4w8n", LATEST, f"{ECR}/shop/api@{ATTACKER}", "c2")])),
    ]  # fmt: skip


# What the webhook answers (act, mode, decision): the first pod pinned to the scanned digest, the
# rescheduled one refused in enforce and let through with a warning in warn.
EXPECTED_ADMISSIONS = (("2", "enforce", "pinned"), ("4", "enforce", "denied"), ("4", "warn", "warned"))

EXPECTED = (
    ExpectedAlert(AlertType.TAG_MOVED_AFTER_SCAN, Severity.MEDIUM, "latest"),
    ExpectedAlert(AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL, "1.4.0"),
    ExpectedAlert(AlertType.UNSCANNED_IMAGE_DEPLOYED, Severity.HIGH, "latest"),
    ExpectedAlert(AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL, "latest"),
)
