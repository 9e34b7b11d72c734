"""Real traffic, patches: a workload changed by a merge patch, a strategic-merge patch or a server-side apply
is judged on the object as stored (`responseObject`, logged at level RequestResponse), never on the body.

The audit log records no request content type: a patch's `requestObject` is the body as sent (a JSON merge
patch, a strategic-merge patch or an apply configuration), `verb` is `patch` for all three, and
`requestURI` names the writer's `fieldManager`. Lines: `events/audit_watcher/lines/deployment_patch_merge.json`,
`deployment_patch_strategic_merge.json`, `deployment_apply_server_side.json` (sources in events/README.md).
Each story goes through the real push guard, scan recorder and audit watcher on moto.
"""

from __future__ import annotations

from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType

from tests.scenario.test_real_traffic_audit import deployment_alerts
from tests.support.audit import ECR, audit_line, envelope
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
RELEASE = f"{ECR}/shop/api:1.4.0"

MERGE = "deployment_patch_merge.json"
STRATEGIC_MERGE = "deployment_patch_strategic_merge.json"
SERVER_SIDE_APPLY = "deployment_apply_server_side.json"
PATCHES = [MERGE, STRATEGIC_MERGE, SERVER_SIDE_APPLY]


def body_images(node: Any) -> list[str]:
    """Every container image a request body names, wherever it sits."""
    if isinstance(node, dict):
        own = [node["image"]] if isinstance(node.get("image"), str) else []
        return own + [image for value in node.values() for image in body_images(value)]
    if isinstance(node, list):
        return [image for value in node for image in body_images(value)]
    return []


def test_the_sample_lines_are_what_each_writer_sends() -> None:
    merge, restart, apply = (audit_line(name) for name in PATCHES)

    for line in (merge, restart, apply):
        assert (line["verb"], line["level"], line["objectRef"]["resource"]) == (
            "patch",
            "RequestResponse",
            "deployments",
        )
        assert line["responseObject"]["spec"]["template"]["spec"]["containers"][0]["image"] == RELEASE
    # kubectl patch --type=merge: the body names the container list it replaces
    assert merge["requestURI"].endswith("?fieldManager=kubectl-patch")
    assert body_images(merge["requestObject"]) == [RELEASE]
    # kubectl rollout restart (a strategic-merge patch): the body names no image, only the template's annotation
    assert restart["requestURI"].endswith("?fieldManager=kubectl-rollout")
    assert body_images(restart["requestObject"]) == []
    # kubectl apply --server-side: the body is the apply configuration, whole enough to name its kind
    assert apply["requestURI"].endswith("?fieldManager=kubectl&force=false")
    assert (apply["requestObject"]["apiVersion"], apply["requestObject"]["kind"]) == ("apps/v1", "Deployment")
    assert [m["operation"] for m in apply["responseObject"]["metadata"]["managedFields"]][-1] == "Apply"


@pytest.mark.parametrize("name", PATCHES)
def test_a_patch_deploying_an_unscanned_release_is_judged_on_the_stored_object(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, name: str
) -> None:
    # Given latest scanned, and 1.4.0 pushed at 10:00 and never scanned
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["latest"], time="2026-11-20T09:01:00Z", counts={"LOW": 1}))
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    stack.received_alerts()

    # When the Deployment is patched (merge, strategic merge or server-side apply) to run 1.4.0
    result = audit_watcher(envelope([audit_line(name)]))

    # Then the stored Deployment is what counts: it runs 1.4.0, unscanned
    assert (result["observations"], result["skipped"]) == (1, {})
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "1.4.0", B)
    assert alert.kubernetes is not None
    assert (alert.kubernetes.kind, alert.kubernetes.namespace, alert.kubernetes.name) == ("Deployment", "shop", "api")


@pytest.mark.parametrize("name", PATCHES)
def test_a_patch_of_a_scanned_release_is_quiet_and_records_where_it_runs(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, name: str
) -> None:
    # Given 1.4.0 pushed and scanned clean
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=["1.4.0"], time="2026-11-20T10:01:00Z", counts={"LOW": 1}))
    stack.received_alerts()

    # When the patch line arrives
    result = audit_watcher(envelope([audit_line(name)]))

    # Then nothing is alerted, and the tag's pointer knows the Deployment runs it
    assert result["alerts"] == []
    assert stack.received_alerts() == []
    (pointer,) = [
        i for i in stack.items() if i["pk"]["S"] == f"TAG#{RELEASE}" and i["sk"]["S"] == "POINTER"
    ]  # fmt: skip
    assert "prod-eks/shop/api" in pointer["in_use"]["M"]


def test_a_rollout_restart_redeploys_what_is_stored_though_its_body_names_no_image(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given 1.4.0 unscanned, and the restart's body only an annotation
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    stack.received_alerts()
    restart = audit_line(STRATEGIC_MERGE)

    # When the same restart is logged at level Request (no responseObject), and then at RequestResponse
    at_request_level = {key: value for key, value in restart.items() if key != "responseObject"}
    at_request_level["level"] = "Request"
    quiet = audit_watcher(envelope([at_request_level]))
    judged = audit_watcher(envelope([restart]))

    # Then the body alone says nothing (a diff is not the object), the stored object says 1.4.0
    assert (quiet["observations"], quiet["skipped"]) == (0, {"no_images": 1})
    assert judged["observations"] == 1
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "1.4.0", B)


def test_a_server_side_apply_logged_at_request_level_is_read_from_its_apply_configuration(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given 1.4.0 unscanned, and the server-side apply logged without its response
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    stack.received_alerts()
    apply = {key: value for key, value in audit_line(SERVER_SIDE_APPLY).items() if key != "responseObject"}
    apply["level"] = "Request"

    # When the audit watcher reads it
    result = audit_watcher(envelope([apply]))

    # Then the apply configuration names its kind and the images its manager owns: it is judged
    assert result["observations"] == 1
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "1.4.0", B)


def test_the_stored_image_is_judged_when_it_differs_from_the_patch_body(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given latest (A) unscanned and 1.4.0 (B) scanned clean, and a merge patch whose body names 1.4.0 while the
    # object as stored names latest (an admission webhook rewrote the image after the patch was applied)
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:00:00Z"))
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=["1.4.0"], time="2026-11-20T10:01:00Z", counts={"LOW": 1}))
    stack.received_alerts()
    merge = audit_line(MERGE)
    (container,) = merge["responseObject"]["spec"]["template"]["spec"]["containers"]
    container["image"] = f"{ECR}/shop/api:latest"

    # When the audit watcher reads it
    audit_watcher(envelope([merge]))

    # Then the stored image is judged, not the body's
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "latest", A)
