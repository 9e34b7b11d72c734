"""The audit watcher through its real `lambda_handler`: EKS audit lines in CloudWatch Logs deliveries, on moto."""

from __future__ import annotations

from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity
from tagwarden.events.parsing import InvalidEventError

from tests.conftest import cold_start
from tests.support.audit import ECR, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
LATEST = f"{ECR}/shop/api:latest"
OBJECTS = ("requestObject", "responseObject")


def scanned(push_guard: Handler, scan_recorder: Handler, tag: str, digest: str, **counts: int) -> None:
    push_guard(ecr_image_action(tag=tag, digest=digest, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=digest, tags=[tag], time="2026-11-20T09:01:00Z", counts=counts or {"LOW": 1}))


def alert_types(stack: Stack) -> list[tuple[AlertType, Severity, str]]:
    return sorted((r.alert.type, r.alert.severity, r.alert.current_digest or "") for r in stack.received_alerts())


def test_sample_delivery_of_a_scanned_image_is_quiet(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)

    result = audit_watcher(load_event("audit_watcher/cloudwatch_logs_envelope.json"))

    assert result["cluster"] == "prod-eks"
    assert result["lines"] == 6
    assert result["observations"] == 3  # Deployment, Pod, kubelet status (the creating one has no imageID yet)
    assert result["skipped"] == {"not_json": 1, "truncated_json": 1, "no_images": 1}
    assert result["alerts"] == []
    assert stack.received_alerts() == []


def test_sample_delivery_on_an_empty_ledger_alerts_once_per_workload_and_content(
    stack: Stack, audit_watcher: Handler
) -> None:
    result = audit_watcher(load_event("audit_watcher/cloudwatch_logs_envelope.json"))

    received = stack.received_alerts()
    assert len(result["alerts"]) == 2
    # The Deployment and its pod share one finding for the tag; the kubelet's running digest is another.
    assert sorted((r.alert.type, r.alert.tag, r.alert.current_digest or "") for r in received) == [
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, "latest", ""),
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, "latest", A),
    ]
    context = received[0].alert.kubernetes
    assert context is not None
    assert (context.cluster, context.namespace) == ("prod-eks", "shop")


def test_control_message_is_skipped(stack: Stack, audit_watcher: Handler) -> None:
    result = audit_watcher(load_event("audit_watcher/cloudwatch_logs_control_message.json"))
    assert result["skipped"] == {"control_message": 1}
    assert stack.items() == []


def test_kubelet_running_an_unscanned_digest_of_a_scanned_tag_is_a_digest_mismatch(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)
    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:00:00Z"))  # the attacker's push
    (moved,) = stack.received_alerts()
    assert moved.alert.type is AlertType.TAG_MOVED_AFTER_SCAN

    audit_watcher(envelope([kubelet_status("api-7d9f8c6b5d-x2k9p", LATEST, f"{ECR}/shop/api@{B}", "k-1")]))

    (received,) = stack.received_alerts()
    alert = received.alert
    assert (alert.type, alert.severity) == (AlertType.DEPLOYED_DIGEST_MISMATCH, Severity.CRITICAL)
    assert (alert.previous_digest, alert.current_digest, alert.scanned_digest) == (A, B, A)
    assert alert.kubernetes is not None
    assert (alert.kubernetes.kind, alert.kubernetes.name, alert.kubernetes.audit_id) == (
        "Pod",
        "api-7d9f8c6b5d-x2k9p",
        "k-1",
    )
    assert alert.evidence == ("k-1",)


@pytest.mark.parametrize(
    "image_id",
    [
        f"docker-pullable://{ECR}/shop/api@{B}",
        f"{ECR}/shop/api@{B}",
        f"{ECR}/mirror/shop-api@{B}",  # the runtime may name another repository: the digest decides
    ],
)
def test_every_image_id_form_is_matched_on_its_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, image_id: str
) -> None:
    scanned(push_guard, scan_recorder, "latest", B, CRITICAL=2)
    stack.received_alerts()

    audit_watcher(envelope([kubelet_status("api-7d9f8c6b5d-x2k9p", LATEST, image_id)]))

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL)
    assert received.alert.current_digest == B


def test_config_digests_and_containers_being_created_are_not_matched(stack: Stack, audit_watcher: Handler) -> None:
    result = audit_watcher(
        envelope([audit_line("pod_status_patch_docker.json"), audit_line("pod_status_patch_creating.json")])
    )
    assert result["observations"] == 0
    assert result["skipped"] == {"unmatchable_image_id": 1, "no_images": 2}
    assert stack.received_alerts() == []


def test_a_workload_of_a_failing_digest_is_vulnerable(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", B, HIGH=1, CRITICAL=1)

    audit_watcher(envelope([audit_line("deployment_create.json")]))

    assert alert_types(stack) == [(AlertType.VULNERABLE_IMAGE_DEPLOYED, Severity.CRITICAL, B)]


def test_cronjob_and_pod_templates_are_read_at_request_and_request_response_level(
    stack: Stack, audit_watcher: Handler
) -> None:
    lines = [audit_line("cronjob_create.json"), audit_line("pod_create_request.json")]
    lines[1]["apiVersion"] = "audit.k8s.io/v1beta1"
    del lines[0]["apiVersion"]

    result = audit_watcher(envelope(lines))

    assert result["observations"] == 2
    kinds = sorted(r.alert.kubernetes.kind for r in stack.received_alerts() if r.alert.kubernetes)
    assert kinds == ["CronJob", "Pod"]  # two workloads: two findings


def test_digest_references_are_checked_on_the_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)
    pinned = with_images(audit_line("deployment_create.json"), f"{ECR}/shop/api@{A}")
    unscanned = with_images(audit_line("cronjob_create.json"), f"{ECR}/shop/api:1.4.0@{B}")

    audit_watcher(envelope([pinned, unscanned]))

    assert alert_types(stack) == [(AlertType.UNSCANNED_IMAGE_DEPLOYED, Severity.HIGH, B)]


def test_last_applied_configuration_is_never_read(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    line = audit_line("deployment_create.json")
    assert (
        ":1.3.2" in line["requestObject"]["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    scanned(push_guard, scan_recorder, "latest", A)

    result = audit_watcher(envelope([line]))

    assert result["observations"] == 1
    assert stack.received_alerts() == []


def test_replicas_retries_and_duplicate_deliveries_make_one_alert(stack: Stack, audit_watcher: Handler) -> None:
    statuses = [
        kubelet_status(f"api-7d9f8c6b5d-{suffix}", LATEST, f"{ECR}/shop/api@{B}", f"k-{suffix}")
        for suffix in ("x2k9p", "q8mzt", "b7v4c")
    ]
    delivery = envelope(statuses)

    first = audit_watcher(delivery)
    again = audit_watcher(delivery)
    audit_watcher(envelope([kubelet_status("api-7d9f8c6b5d-zz9zz", LATEST, f"{ECR}/shop/api@{B}")]))

    assert len(first["alerts"]) == 1
    assert again["alerts"] == []
    assert len(stack.received_alerts()) == 1


def test_images_outside_ecr_are_counted_not_checked_unless_listed(
    stack: Stack, audit_watcher: Handler, lambda_context: FakeLambdaContext
) -> None:
    line = with_images(audit_line("deployment_create.json"), "docker.io/library/nginx:1.27")
    assert audit_watcher(envelope([line]))["observations"] == 0
    assert stack.received_alerts() == []

    watching_docker_hub = cold_start(
        "audit_watcher", {**stack.environment(), "EXTRA_MONITORED_REGISTRIES": "docker.io"}, lambda_context
    )
    result = watching_docker_hub(envelope([line]))

    assert result["observations"] == 1
    (received,) = stack.received_alerts()
    assert (received.alert.registry, received.alert.repository) == ("docker.io", "library/nginx")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda line: line.update({"stage": "RequestReceived"}), "not_completed"),
        (lambda line: line["responseStatus"].update({"code": 403}), "not_completed"),
        (lambda line: line.update({"apiVersion": "audit.k8s.io/v2"}), "unknown_audit_version"),
        (lambda line: line.update({"objectRef": "pods"}), "invalid_audit_event"),
        (lambda line: [line[o]["spec"]["template"]["spec"].update({"containers": "x"}) for o in OBJECTS], "no_images"),
    ],
)
def test_lines_that_are_not_acted_on_are_counted_and_the_rest_processed(
    stack: Stack, audit_watcher: Handler, change: Any, reason: str
) -> None:
    bad = audit_line("deployment_create.json")
    change(bad)
    good = audit_line("cronjob_create.json")

    result = audit_watcher(envelope([bad, "x" * 10, good]))

    assert result["skipped"] == {reason: 1, "not_json": 1}
    assert len(stack.received_alerts()) == 1  # the good line still counts


def test_invalid_image_references_are_skipped(stack: Stack, audit_watcher: Handler) -> None:
    line = with_images(audit_line("deployment_create.json"), "Not A Valid/Reference::")
    assert audit_watcher(envelope([line]))["observations"] == 0


def test_an_undecodable_delivery_is_an_invalid_event(stack: Stack, audit_watcher: Handler) -> None:
    with pytest.raises(InvalidEventError, match="awslogs"):
        audit_watcher({"awslogs": {"data": "not base64 gzip"}})


def test_usage_is_recorded_and_raises_the_severity_of_a_later_move(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)
    audit_watcher(envelope([audit_line("deployment_create.json")]))
    pointer = next(
        i for i in stack.items() if i["pk"]["S"] == f"TAG#{ECR}/shop/api:latest" and i["sk"]["S"] == "POINTER"
    )
    assert list(pointer["in_use"]["M"]) == ["prod-eks/shop/api"]

    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:00:00Z"))

    (received,) = stack.received_alerts()
    # A mutable tag moving to an unscanned digest is LOW; in use, one step more.
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.MEDIUM)
    assert [(s.cluster, s.namespace, s.workload) for s in received.alert.in_use] == [("prod-eks", "shop", "api")]
    assert "in use by prod-eks/shop/api" in received.alert.summary


def test_ledger_reads_are_batched_over_distinct_images(
    stack: Stack, audit_watcher: Handler, lambda_context: FakeLambdaContext
) -> None:
    from tests.support.handlers import load_function_module
    from tests.support.requests import RequestLog, dynamodb_operations

    requests = RequestLog()
    requests.attach()  # before the handler's clients exist: they copy the session's handlers
    module = load_function_module("audit_watcher", stack.environment())
    lines = [with_images(audit_line("deployment_create.json"), f"{ECR}/shop/svc-{n}:v{n % 7}") for n in range(250)] * 2
    with requests.record() as calls:
        module.lambda_handler(envelope(lines), lambda_context)
    # 250 distinct tags and one workload: 3 BatchGetItem; 250 findings: 3 BatchGetItem to see none was recorded
    # before, then each is recorded and flagged delivered (2 writes); the workload's rollouts are written once.
    assert dynamodb_operations(calls) == {"BatchGetItem": 3 + 3, "PutItem": 250 + 1, "UpdateItem": 250}


def test_a_timestamp_without_a_zone_is_read_as_utc(stack: Stack, audit_watcher: Handler) -> None:
    line = audit_line("deployment_create.json")
    line["stageTimestamp"] = "2026-11-20T12:30:00.000000"
    result = audit_watcher(envelope([line, audit_line("cronjob_create.json")]))
    assert result["observations"] == 2


def test_usage_of_a_tag_stays_bounded(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)
    deployments = []
    for n in range(70):
        line = audit_line("deployment_create.json")
        line["objectRef"]["name"] = f"svc-{n}"
        line["stageTimestamp"] = f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}.000000Z"
        deployments.append(line)
    for line in deployments:  # one delivery each, as they would come over the hours
        audit_watcher(envelope([line]))
    pointer = next(
        i for i in stack.items() if i["pk"]["S"] == f"TAG#{ECR}/shop/api:latest" and i["sk"]["S"] == "POINTER"
    )
    assert len(pointer["in_use"]["M"]) == 50
    assert "prod-eks/shop/svc-69" in pointer["in_use"]["M"]


def test_ephemeral_debug_containers_are_checked(stack: Stack, audit_watcher: Handler) -> None:
    line = with_images(audit_line("pod_create_request_response.json"), f"{ECR}/tools/debug:1")
    line["verb"] = "patch"
    line["objectRef"].update({"name": "api-7d9f8c6b5d-x2k9p", "subresource": "ephemeralcontainers"})
    assert audit_watcher(envelope([line]))["observations"] == 1


def test_a_kubelet_reporting_a_mirror_still_counts_for_an_ecr_tag(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    scanned(push_guard, scan_recorder, "latest", A)
    push_guard(ecr_image_action(tag="latest", digest=B, time="2026-11-20T10:00:00Z"))
    stack.received_alerts()
    audit_watcher(envelope([kubelet_status("api-7d9f8c6b5d-x2k9p", LATEST, f"docker.io/mirror/api@{B}")]))
    (received,) = stack.received_alerts()
    assert received.alert.type is AlertType.DEPLOYED_DIGEST_MISMATCH
