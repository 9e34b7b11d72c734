"""Rollouts at one workload whose audit lines two API servers logged, through the real handlers on moto.

EKS runs two or more API server instances, each writing its own audit log stream; a CloudWatch Logs
subscription delivery carries one stream's lines, so one story's lines arrive split and in any order. These
stories come from the s17 red team (findings 2, 3, 4, 5, 8, 9).
"""

from __future__ import annotations

import copy
from typing import Any

from tagwarden.adapters.dynamodb.keys import rollouts_key

from tests.scenario.test_real_traffic_vulnerable_rollbacks import IMAGE, B, D, pod, recorder_at, rollout, vulnerable
from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.stack import Stack

# The second API server's stream (the fixtures' envelope names the first one).
OTHER_STREAM = "kube-apiserver-audit-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def rollouts_item(stack: Stack, location: str = "prod-eks/shop/api") -> dict[str, Any] | None:
    item: dict[str, Any] | None = stack.dynamodb.get_item(TableName=stack.table_name, Key=rollouts_key(location)).get(
        "Item"
    )
    return item


def d_known_failing(stack: Stack, push_guard: Handler) -> None:
    """D failed its scan (recorded at 09:50), B is pushed."""
    push_guard(ecr_image_action(tag="1.0.0", digest=D, time="2026-11-20T09:40:00Z"))
    push_guard(ecr_image_action(tag="1.0.1", digest=B, time="2026-11-20T09:41:00Z"))
    recorder_at(stack, "09:50:00")(
        ecr_scan(digest=D, tags=["1.0.0"], time="2026-11-20T09:49:30Z", counts={"CRITICAL": 1})
    )
    assert stack.received_alerts() == []


def pod_created(digest: str, moment: str, audit_id: str) -> dict[str, Any]:
    """A pod of shop/api created with `digest` at `moment` (a ReplicaSet controller's create)."""
    line = at(with_images(audit_line("pod_create_request_response.json"), f"{IMAGE}@{digest}"), moment)
    line["auditID"] = audit_id
    return line


def test_a_b_a_b_split_across_two_streams_alerts_both_rollouts_of_known_vulnerable_content(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given D known failing since 09:50 and B passing
    d_known_failing(stack, push_guard)
    recorder_at(stack, "09:50:00")(ecr_scan(digest=B, tags=["1.0.1"], time="2026-11-20T09:49:40Z", counts={"LOW": 2}))
    stack.received_alerts()
    # The story at shop/api: D at 10:00, B at 10:10, back to D at 10:20, B again at 10:30, each with its pod
    # creation 4 s later and the previous content's old pod reporting 2 minutes in; the two servers'
    # deliveries processed in this order:
    audit_watcher(envelope([rollout(D, "10:00:00", "r-1"), pod_created(D, "10:00:04", "p-1")]))
    audit_watcher(
        envelope(
            [
                rollout(B, "10:30:00", "r-4"),
                pod_created(B, "10:30:04", "p-4"),
                pod("api-7d9f8c6b5d-x2k9p", D, "10:32:00"),
            ],
            stream=OTHER_STREAM,
        )
    )
    audit_watcher(
        envelope(
            [
                pod("api-7d9f8c6b5d-x2k9p", D, "10:12:00"),
                rollout(D, "10:20:00", "r-3"),
                pod("api-5c8b7a6d4f-h3j8k", B, "10:22:00"),
            ],
            stream=OTHER_STREAM,
        )
    )
    audit_watcher(
        envelope([rollout(B, "10:10:00", "r-2"), pod_created(B, "10:10:04", "p-2"), pod_created(D, "10:20:04", "p-3")])
    )
    # and D's pods keep reporting afterwards (the next line of D alerts a split learned late)
    audit_watcher(envelope([pod("api-7d9f8c6b5d-x2k9p", D, "11:00:00")]))
    # Then both rollouts of known-vulnerable D are alerted, and the record keeps all four rollouts
    assert len(vulnerable(stack)) == 2
    item = rollouts_item(stack)
    assert item is not None
    assert {key.split("@")[1]: value["S"][11:19] for key, value in item["contents"]["M"].items()} == {
        D: "10:20:00",
        B: "10:30:00",
    }


def test_an_unreadable_rollouts_item_costs_only_its_workload(stack: Stack, audit_watcher: Handler) -> None:
    # Given shop/api's ROLLOUTS item holds a value that is no time (a hand edit, a future format)
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={
            **rollouts_key("prod-eks/shop/api"),
            "kind": {"S": "workload_rollouts"},
            "contents": {"M": {f"{IMAGE}@{B}": {"S": "2026-11-20T09:00:00.000000Z"}}},
            "history": {"M": {f"{IMAGE}@{B}": {"M": {"earlier": {"S": "oops"}}}}},
            "version": {"N": "3"},
        },
    )
    worker = at(with_images(audit_line("deployment_create.json"), f"{IMAGE}@{D}"), "10:00:00")
    worker["objectRef"]["name"] = worker["requestObject"]["metadata"]["name"] = "worker"
    # When a delivery holds lines of it and of another workload
    result = audit_watcher(envelope([worker, pod("api-7d9f8c6b5d-x2k9p", D, "10:00:30")]))
    # Then both are processed, and shop/api's item is replaced by what this delivery learned
    assert result["observations"] == 2
    assert rollouts_item(stack, "prod-eks/shop/worker") is not None
    item = rollouts_item(stack)
    assert item is not None
    assert (item["version"]["N"], list(item["contents"]["M"])) == ("4", [f"{IMAGE}@{D}"])


def test_one_rollout_of_known_vulnerable_content_split_across_two_streams_alerts_once(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given D known failing since 09:50
    d_known_failing(stack, push_guard)
    # When shop/api rolls out D at 10:00 (the Deployment write and the pod creation logged by server 1), and
    # the kubelet's status of the new pod (10:00:30), logged by server 2, is processed first
    audit_watcher(envelope([pod("api-7d9f8c6b5d-x2k9p", D, "10:00:30")], stream=OTHER_STREAM))
    audit_watcher(envelope([rollout(D, "10:00:00", "r-1"), pod_created(D, "10:00:05", "p-1")]))
    # Then the one rollout is one finding: the Deployment write's start keeps the kubelet line's as its alias
    alerts = vulnerable(stack)
    assert [alert.kubernetes and alert.kubernetes.kind for alert in alerts] == ["Pod"]
    item = rollouts_item(stack)
    assert item is not None
    (history,) = item["history"]["M"].values()
    assert history["M"]["aliases"]["M"] == {"2026-11-20T10:00:00.120000Z": {"S": "2026-11-20T10:00:30.120000Z"}}
    # And later lines of the rollout, in either stream, raise nothing more
    audit_watcher(envelope([pod("api-7d9f8c6b5d-m4n7q", D, "10:01:00")], stream=OTHER_STREAM))
    audit_watcher(envelope([pod_created(D, "10:00:40", "p-2")]))
    assert vulnerable(stack) == []


def test_a_cronjobs_runs_of_known_content_write_nothing_in_steady_state(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given content already seen at a workload (B, passing) ...
    push_guard(ecr_image_action(tag="1.0.1", digest=B, time="2026-11-20T09:41:00Z"))
    recorder_at(stack, "09:50:00")(ecr_scan(digest=B, tags=["1.0.1"], time="2026-11-20T09:49:40Z", counts={"LOW": 1}))
    audit_watcher(envelope([rollout(B, "10:00:00", "r-0")]))
    first = rollouts_item(stack)
    assert first is not None
    # When its controller creates a pod of it every 5 minutes for an hour (a CronJob's runs, evictions)
    for n in range(1, 13):
        audit_watcher(envelope([pod_created(B, f"{10 + n * 5 // 60}:{n * 5 % 60:02d}:00", f"p-{n}")]))
    # Then the workload's rollouts are never written again, and nothing is alerted
    after = rollouts_item(stack)
    assert after is not None
    assert after["version"] == first["version"]
    assert stack.received_alerts() == []


def test_a_controller_re_creating_an_old_pod_during_a_rollout_is_no_rollback(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given D known failing, rolled out at 10:00 (alerted), then B at 10:10
    d_known_failing(stack, push_guard)
    audit_watcher(envelope([rollout(D, "10:00:00", "r-1"), pod_created(D, "10:00:04", "p-1")]))
    assert len(vulnerable(stack)) == 1
    audit_watcher(envelope([rollout(B, "10:10:00", "r-2"), pod_created(B, "10:10:04", "p-2")]))
    # When the old ReplicaSet's controller re-creates a pod of D during B's rollout (a node drained)
    audit_watcher(envelope([pod_created(D, "10:12:00", "p-3")]))
    # Then that is D's first rollout still showing, not a rollback to D: nothing more is alerted
    assert vulnerable(stack) == []
    # While a person's rollback to D is a rollout of its own, alerted again
    audit_watcher(envelope([rollout(D, "10:20:00", "r-3")]))
    assert len(vulnerable(stack)) == 1


SIDECAR = f"{ECR}/shop/proxy"
S = "sha256:" + "5e" * 32
A1 = "sha256:" + "a1" * 32
A2 = "sha256:" + "a2" * 32


def with_sidecar(main: str, moment: str, audit_id: str) -> dict[str, Any]:
    """The Deployment shop/api written with main image `main` and the sidecar proxy `S` (one spec write)."""
    line = rollout(main, moment, audit_id)
    for obj in (line["requestObject"], line["responseObject"]):
        containers = obj["spec"]["template"]["spec"]["containers"]
        proxy = copy.deepcopy(containers[0])
        proxy["name"] = "proxy"
        proxy["image"] = f"{SIDECAR}@{S}"
        containers.append(proxy)
    return line


def test_an_unchanged_known_vulnerable_sidecar_is_not_alerted_again_per_deploy_of_the_main_container(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given the sidecar image S known failing since 09:50, and main images A1, A2 passing
    for tag, digest, repo in (("p1", S, "shop/proxy"), ("1", A1, "shop/api"), ("2", A2, "shop/api")):
        push_guard(ecr_image_action(tag=tag, digest=digest, time="2026-11-20T09:40:00Z", repository=repo))
    recorder = recorder_at(stack, "09:50:00")
    recorder(
        ecr_scan(digest=S, tags=["p1"], time="2026-11-20T09:49:30Z", counts={"CRITICAL": 1}, repository="shop/proxy")
    )
    for tag, digest in (("1", A1), ("2", A2)):
        recorder(ecr_scan(digest=digest, tags=[tag], time="2026-11-20T09:49:40Z", counts={"LOW": 1}))
    stack.received_alerts()
    # When the team deploys main A1, then A2, then A1 again; the sidecar S never changes
    audit_watcher(envelope([with_sidecar(A1, "10:00:00", "r-1")]))
    assert len(vulnerable(stack)) == 1  # S rolled out: alerted
    audit_watcher(envelope([with_sidecar(A2, "11:00:00", "r-2")]))
    audit_watcher(envelope([with_sidecar(A1, "12:00:00", "r-3")], stream=OTHER_STREAM))
    # Then S, never rolled out again, is not alerted again
    assert vulnerable(stack) == []


def many_images_status(pod_name: str, count: int, moment: str) -> dict[str, Any]:
    """A kubelet status of a pod running `count` containers, each its own image of the monitored registry."""
    line = kubelet_status(pod_name, f"{IMAGE}:x", f"{IMAGE}@{D}", "k-many")
    (template,) = line["requestObject"]["status"]["containerStatuses"]
    statuses = []
    for n in range(count):
        status = copy.deepcopy(template)
        digest = "sha256:" + f"{n:02d}" * 32
        status["name"] = f"c{n}"
        status["image"] = status["imageID"] = f"{ECR}/shop/c{n:02d}@{digest}"
        statuses.append(status)
    line["requestObject"]["status"]["containerStatuses"] = statuses
    return at(line, moment)


def test_a_pod_of_30_images_writes_and_alerts_once_then_nothing(stack: Stack, audit_watcher: Handler) -> None:
    # Given a pod with 30 containers (sidecars, init containers), images in the monitored registry, unscanned
    audit_watcher(envelope([many_images_status("api-7d9f8c6b5d-x2k9p", 30, "10:00:00")]))
    assert len(stack.received_alerts()) == 30
    first = rollouts_item(stack)
    assert first is not None
    assert len(first["contents"]["M"]) == 30
    # When its kubelet status is logged again and again (nothing changed)
    for n in range(1, 6):
        audit_watcher(envelope([many_images_status("api-7d9f8c6b5d-x2k9p", 30, f"10:0{n}:00")]))
    # Then no write and no alert: every image stays remembered
    after = rollouts_item(stack)
    assert after is not None
    assert after["version"] == first["version"]
    assert stack.received_alerts() == []
