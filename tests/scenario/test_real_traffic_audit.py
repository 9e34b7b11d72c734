"""Real audit traffic, told as EKS and CloudWatch deliver it: late, out of order, patched, dry-run, messy.

Every story goes through the real handlers on moto. Lines come from `events/audit_watcher/lines/` (sources
in events/README.md); only times, images and ids are changed per story.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
from tagwarden.domain.alerts import Alert, AlertType
from tagwarden.domain.workloads import ROLLOUT_WINDOW

from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import FakeLambdaContext, Handler, load_function_module
from tests.support.requests import RequestLog, dynamodb_operations
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
C = "sha256:a4e55cef664c9bd4a21187ba3e2c7a0db0a1264d5ae831932e816ac509aa5916"
LATEST = f"{ECR}/shop/api:latest"
PASSING = {"LOW": 1}


def rollout(image: str, moment: str, audit_id: str) -> dict[str, Any]:
    """A Deployment `shop/api` written with `image` at `moment`."""
    line = at(with_images(audit_line("deployment_create.json"), image), moment)
    line["auditID"] = audit_id
    return line


def deployment_alerts(stack: Stack) -> list[Alert]:
    """The alerts the audit watcher published (the push guard's and scan recorder's left aside)."""
    return [received.alert for received in stack.received_alerts() if received.alert.kubernetes is not None]


def push(push_guard: Handler, tag: str, digest: str, time: str) -> None:
    push_guard(ecr_image_action(tag=tag, digest=digest, time=f"2026-11-20T{time}Z"))


def scan(scan_recorder: Handler, digest: str, tags: list[str], time: str) -> None:
    scan_recorder(ecr_scan(digest=digest, tags=tags, time=f"2026-11-20T{time}Z", counts=PASSING))


class CountingWatcher:
    """The audit watcher's handler in a fresh container whose DynamoDB requests are counted."""

    def __init__(self, stack: Stack, context: FakeLambdaContext) -> None:
        self.requests = RequestLog()
        self.requests.attach()  # before the module's clients exist: they copy the session's handlers
        self.module = load_function_module("audit_watcher", stack.environment())
        self.context = context

    def __call__(self, event: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
        with self.requests.record() as calls:
            result: dict[str, Any] = self.module.lambda_handler(event, self.context)
        return result, dynamodb_operations(calls)


# --- Judged at the line's time ------------------------------------------------------------------------


def test_an_honest_push_after_the_rollout_does_not_accuse_it(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, lambda_context: FakeLambdaContext
) -> None:
    # Given latest -> A, scanned, rolled out at 09:31
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    line = at(audit_line("deployment_create.json"), "09:31:04")
    # and a release pushed over latest at 09:33, before CloudWatch delivered the 09:31 line
    push(push_guard, "latest", B, "09:33:00")
    stack.received_alerts()
    watcher = CountingWatcher(stack, lambda_context)

    # When the line arrives
    result, requests = watcher(envelope([line]))

    # Then the rollout is judged on A, what latest named at 09:31: no alert
    assert result["alerts"] == []
    assert deployment_alerts(stack) == []
    # reading latest's history at 09:31 cost one Query, and only because the line predates the move
    assert requests["Query"] == 1


def test_an_attacker_push_before_the_rollout_is_caught_even_when_scanned_and_moved_on_since(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given latest -> A, scanned; the attacker pushes B over it at 09:20; the rollout pulls latest at 09:31
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    push(push_guard, "latest", B, "09:20:00")
    line = at(audit_line("deployment_create.json"), "09:31:04")
    # and by the time the line is delivered, B was scanned clean and latest moved on to C
    scan(scan_recorder, B, ["latest"], "09:40:00")
    push(push_guard, "latest", C, "09:50:00")
    stack.received_alerts()

    # When the line arrives at 10:00
    audit_watcher(envelope([line]))

    # Then the rollout deployed B, unscanned at 09:31
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "latest", B)
    assert "no completed scan at 2026-11-20 09:31:04Z" in alert.summary
    assert "its scan completed later, at 2026-11-20 09:40:00Z" in alert.summary


def test_lines_delivered_late_and_out_of_order_are_each_judged_at_their_own_time(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given latest named A (scanned) from 09:00, B (never scanned) from 09:20, C (scanned) from 09:40
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    push(push_guard, "latest", B, "09:20:00")
    push(push_guard, "latest", C, "09:40:00")
    scan(scan_recorder, C, ["latest"], "09:41:00")
    stack.received_alerts()
    lines = [rollout(LATEST, moment, f"r-{moment}") for moment in ("09:45:00", "09:25:00", "09:10:00", "09:30:00")]
    for n, line in enumerate(lines):
        line["objectRef"]["name"] = f"api-{n}"  # four workloads, so each line stands on its own

    # When one delivery brings them, newest first
    audit_watcher(envelope(lines))

    # Then only the two rollouts of 09:25 and 09:30 deployed the unscanned B
    alerts = deployment_alerts(stack)
    assert sorted((a.kubernetes.name if a.kubernetes else "", a.current_digest) for a in alerts) == [
        ("api-1", B),
        ("api-3", B),
    ]


def test_a_line_newer_than_the_tags_last_move_reads_no_history(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, lambda_context: FakeLambdaContext
) -> None:
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    watcher = CountingWatcher(stack, lambda_context)

    lines = [audit_line("deployment_create.json"), audit_line("pod_status_patch_plain.json")]
    result, requests = watcher(envelope(lines))

    assert result["alerts"] == []
    # The common case: one BatchGetItem (pointer and workload), then the workload's first rollout is written.
    assert requests == Counter({"BatchGetItem": 1, "PutItem": 1, "UpdateItem": 1})
    _, again = watcher(envelope(lines))
    assert again == Counter({"BatchGetItem": 1})


# --- What is not a deployment, and what a patch deployed ----------------------------------------------


def test_a_server_side_dry_run_is_not_a_deployment(stack: Stack, audit_watcher: Handler) -> None:
    # Given an empty ledger (any deployment of shop/api would alert) and `kubectl create --dry-run=server`
    dry_run = audit_line("deployment_create_dry_run.json")
    lookalike = audit_line("deployment_create_dry_run.json")
    lookalike["requestURI"] = "/apis/apps/v1/namespaces/shop/deployments?dryRun=AllOfThem&fieldManager=kubectl-create"

    # When the dry run is delivered
    result = audit_watcher(envelope([dry_run]))

    # Then nothing was deployed
    assert result["skipped"] == {"dry_run": 1}
    assert deployment_alerts(stack) == []
    # while a query that only contains the text is a real write
    assert len(audit_watcher(envelope([lookalike]))["alerts"]) == 1


def test_a_json_patch_is_judged_on_the_stored_object(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given latest scanned and 1.4.0 pushed, never scanned
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    push(push_guard, "1.4.0", B, "10:00:00")
    stack.received_alerts()
    patch = audit_line("deployment_patch_json_patch.json")
    assert isinstance(patch["requestObject"], list)

    # When `kubectl patch --type=json` sets the image to 1.4.0
    audit_watcher(envelope([patch]))

    # Then the Deployment as stored is what counts
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.tag, alert.current_digest) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, "1.4.0", B)


def test_a_patch_body_that_is_not_an_object_never_costs_the_line_or_the_batch(
    stack: Stack, audit_watcher: Handler
) -> None:
    # Given the same patch logged at level Request (no responseObject): only the JSON patch array is known
    patch = audit_line("deployment_patch_json_patch.json")
    del patch["responseObject"]
    merge_patch = audit_line("deployment_patch_json_patch.json")
    del merge_patch["responseObject"]
    merge_patch["requestObject"] = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": LATEST}]}}}}

    result = audit_watcher(envelope([patch, merge_patch, audit_line("cronjob_create.json")]))

    # Then both are read (nothing to judge: a diff is not the object) and the batch goes on
    assert result["skipped"] == {"no_images": 2}
    assert result["observations"] == 1


# --- Lines the ledger cannot store as they are --------------------------------------------------------


def test_an_over_long_audit_id_and_deep_junk_still_yield_the_images(stack: Stack, audit_watcher: Handler) -> None:
    # Given a line with a 5,000-character auditID, and one with junk nested deeper than json.loads allows
    long_id = audit_line("deployment_create.json")
    long_id["auditID"] = "x" * 5000
    deep = audit_line("cronjob_create.json")
    deep["responseObject"]["status"]["junk"] = "JUNK"
    deep_text = json.dumps(deep, separators=(",", ":")).replace('"JUNK"', "[" * 5000 + "]" * 5000)

    result = audit_watcher(envelope([long_id, deep_text]))

    # Then both lines count, with what could not be stored cut
    assert result["observations"] == 2
    assert result["skipped"] == {}
    assert result["repaired"] == {"audit_id_shortened": 1, "deep_nesting_pruned": 1}
    contexts = [a.kubernetes for a in deployment_alerts(stack) if a.kubernetes]
    assert sorted(c.kind for c in contexts) == ["CronJob", "Deployment"]
    audit_id = next(c.audit_id for c in contexts if c.kind == "Deployment")
    assert audit_id is not None
    assert audit_id.startswith("x" * 90)
    assert len(audit_id) <= 128


# --- Who ran what -------------------------------------------------------------------------------------


def test_a_kubelet_naming_a_config_id_never_makes_up_docker_hub_sha256(stack: Stack, audit_watcher: Handler) -> None:
    # Given a pod whose spec pins shop/api by digest, and containerd reporting `image: sha256:<config id>`
    pod = with_images(audit_line("pod_create_request_response.json"), f"{ECR}/shop/api@{B}")
    status = audit_line("pod_status_patch_config_id.json")
    assert status["requestObject"]["status"]["containerStatuses"][0]["image"].startswith("sha256:")

    # When the status arrives alone, and then with the pod's creation
    audit_watcher(envelope([status]))
    alone = deployment_alerts(stack)
    audit_watcher(envelope([pod, status], cluster="staging-eks"))
    together = deployment_alerts(stack)

    # Then the alerts name shop/api: from the imageID alone, from the pod's spec when the delivery has it
    for alert in [*alone, *together]:
        assert (alert.registry, alert.repository, alert.current_digest) == (ECR, "shop/api", B)
        assert "library/sha256" not in alert.model_dump_json()
    assert len(alone) == 1
    assert len(together) == 1  # the pod's spec and its kubelet share one finding


def test_a_pod_created_at_request_level_is_grouped_with_its_workload(stack: Stack, audit_watcher: Handler) -> None:
    # Given the Deployment and a pod its ReplicaSet created, logged at level Request (only generateName known)
    pod = audit_line("pod_create_request.json")
    assert "name" not in pod["requestObject"]["metadata"]

    audit_watcher(envelope([audit_line("deployment_create.json"), pod]))

    # Then both are the same finding of workload shop/api
    (alert,) = deployment_alerts(stack)
    assert alert.kubernetes is not None
    assert (alert.kubernetes.namespace, alert.kubernetes.kind) == ("shop", "Deployment")


# --- One alert per workload, content and rollout ------------------------------------------------------


def test_a_rollback_to_an_unscanned_digest_alerts_again_and_replays_do_not(
    stack: Stack, audit_watcher: Handler
) -> None:
    # Given rollouts of unscanned digests: A at 10:00, B at 10:10, A again at 10:20
    first = rollout(f"{ECR}/shop/api@{A}", "10:00:00", "r-1")
    second = rollout(f"{ECR}/shop/api@{B}", "10:10:00", "r-2")
    old_pod = at(kubelet_status("api-7d9f8c6b5d-x2k9p", f"{ECR}/shop/api@{A}", f"{ECR}/shop/api@{A}"), "10:12:00")
    rollback = rollout(f"{ECR}/shop/api@{A}", "10:20:00", "r-3")
    deliveries = [envelope([first]), envelope([second, old_pod]), envelope([rollback])]

    # When they are delivered, and delivered again
    published = [audit_watcher(delivery)["alerts"] for delivery in deliveries]
    replayed = [audit_watcher(delivery)["alerts"] for delivery in deliveries]

    # Then each rollout alerted once (an old pod of A reporting during B's rollout is not a rollout of A)
    assert [len(alerts) for alerts in published] == [1, 1, 1]
    assert [a.current_digest for a in deployment_alerts(stack)] == [A, B, A]
    assert replayed == [[], [], []]


def test_the_same_finding_alerts_again_after_the_rollout_window(stack: Stack, audit_watcher: Handler) -> None:
    assert ROLLOUT_WINDOW.total_seconds() == 24 * 3600
    day_one = rollout(f"{ECR}/shop/api@{A}", "10:00:00", "d-1")
    later_that_day = rollout(f"{ECR}/shop/api@{A}", "22:00:00", "d-2")
    next_day = rollout(f"{ECR}/shop/api@{A}", "10:00:00", "d-3")
    next_day["stageTimestamp"] = "2026-11-21T10:00:01.000000Z"

    counts = [len(audit_watcher(envelope([line]))["alerts"]) for line in (day_one, later_that_day, next_day)]

    assert counts == [1, 0, 1]


# --- Rollouts ordered across deliveries of two API servers' log streams --------------------------------
# EKS runs two or more API server instances, each logging to its own stream; a subscription delivery holds
# one stream's lines, so a rollback's lines can arrive split across deliveries, in either order.

STREAM_X = "kube-apiserver-audit-d9c12955a891f5b378a39dbd1383b507"
STREAM_Y = "kube-apiserver-audit-5e3a0c71b2f94d8a9c6e1f0b7a2d4c88"


def pod_created(image: str, moment: str, audit_id: str) -> dict[str, Any]:
    """The ReplicaSet controller creating a pod of `shop/api` running `image` at `moment`."""
    line = at(with_images(audit_line("pod_create_request_response.json"), image), moment)
    line["auditID"] = audit_id
    return line


def rollback_story() -> dict[str, dict[str, Any]]:
    """Rollouts of unscanned A at 10:00, B at 10:10 and A again at 10:20, logged by two API servers."""
    return {
        # Server X logged the Deployment writes of A and of the rollback to A
        "x": envelope(
            [rollout(f"{ECR}/shop/api@{A}", "10:00:00", "x-1"), rollout(f"{ECR}/shop/api@{A}", "10:20:00", "x-2")],
            stream=STREAM_X,
        ),
        # Server Y logged A's pod creation and the rollout to B
        "y": envelope(
            [pod_created(f"{ECR}/shop/api@{A}", "10:00:04", "y-1"), rollout(f"{ECR}/shop/api@{B}", "10:10:00", "y-2")],
            stream=STREAM_Y,
        ),
        # Later, server X logs a kubelet status of a pod running A
        "next": envelope(
            [
                at(
                    kubelet_status("api-7d9f8c6b5d-q8w2e", f"{ECR}/shop/api@{A}", f"{ECR}/shop/api@{A}", "x-3"),
                    "10:25:00",
                )
            ],
            stream=STREAM_X,
        ),
    }


@pytest.mark.parametrize("order", [("x", "y", "next"), ("y", "x", "next")])
def test_a_rollback_split_across_two_streams_alerts_once_per_rollout_in_either_order(
    stack: Stack, audit_watcher: Handler, order: tuple[str, ...]
) -> None:
    deliveries = rollback_story()

    # When the two servers' deliveries are processed in either order, then A's next line, then all again
    published = [audit_watcher(deliveries[name])["alerts"] for name in order]
    replayed = [audit_watcher(deliveries[name])["alerts"] for name in order]

    # Then one alert per rollout: A's, B's and the rollback to A
    alerts = deployment_alerts(stack)
    assert sorted(a.current_digest or "" for a in alerts) == sorted([A, A, B])
    assert replayed == [[], [], []]
    if order[0] == "x":
        # X first: the rollback was folded into A's rollout (B unknown); B's delivery splits it, and A's next
        # line raises the rollback's alert
        assert [len(alerts) for alerts in published] == [1, 1, 1]
        assert alerts[-1].kubernetes is not None and alerts[-1].kubernetes.kind == "Pod"
    else:
        # Y first: A's pod creation starts A's rollout, the Deployment write of A joins it, the rollback starts
        # its own
        assert [len(alerts) for alerts in published] == [2, 1, 0]


def test_a_rollouts_item_of_the_first_format_is_still_read(stack: Stack, audit_watcher: Handler) -> None:
    # Given a workload's rollouts as the previous format stored them: content -> start of its latest rollout
    audit_watcher(envelope([rollout(f"{ECR}/shop/api@{A}", "10:00:00", "r-1")]))
    (item,) = [i for i in stack.items() if i["sk"]["S"] == "ROLLOUTS"]
    legacy = {
        k: v for k, v in item.items() if k in {"pk", "sk", "kind", "location", "contents", "version", "updated_at"}
    }
    stack.dynamodb.put_item(TableName=stack.table_name, Item=legacy)

    # When B and the rollback to A follow, and A's rollout is delivered again
    counts = [
        len(audit_watcher(envelope(lines))["alerts"])
        for lines in (
            [rollout(f"{ECR}/shop/api@{B}", "10:10:00", "r-2")],
            [rollout(f"{ECR}/shop/api@{A}", "10:20:00", "r-3")],
            [rollout(f"{ECR}/shop/api@{A}", "10:00:00", "r-1")],
        )
    ]

    # Then it is read (no alert repeated, the rollback alerted) and written in the new format
    assert counts == [1, 1, 0]
    (item,) = [i for i in stack.items() if i["sk"]["S"] == "ROLLOUTS"]
    assert set(item["history"]["M"]) == {f"{ECR}/shop/api@{A}"}
    assert set(item["history"]["M"][f"{ECR}/shop/api@{A}"]["M"]) == {"earlier"}


# --- Image volumes ----------------------------------------------------------------------------------------


def with_image_volume(line: dict[str, Any], reference: str) -> dict[str, Any]:
    """The pod creation with an image volume (KEP-4639) mounting `reference`, as the API server stores it."""
    changed: dict[str, Any] = copy.deepcopy(line)
    volume = {"name": "models", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}
    changed["responseObject"]["spec"]["volumes"].append(volume)
    return changed


def test_an_image_volume_is_judged_like_a_container_image(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given the pod's container image scanned, and a model image pushed but never scanned
    push(push_guard, "latest", A, "09:00:00")
    scan(scan_recorder, A, ["latest"], "09:01:00")
    push_guard(ecr_image_action(tag="v7", digest=B, time="2026-11-20T09:02:00Z", repository="shop/models"))
    stack.received_alerts()
    pod = with_images(audit_line("pod_create_request_response.json"), LATEST)

    # When a pod mounting the model image as an image volume is created
    audit_watcher(envelope([at(with_image_volume(pod, f"{ECR}/shop/models:v7"), "09:31:04")]))

    # Then the volume's unscanned image is reported, as a container's would be
    (alert,) = deployment_alerts(stack)
    assert (alert.type, alert.repository, alert.tag, alert.current_digest) == (
        AlertType.UNSCANNED_IMAGE_DEPLOYED,
        "shop/models",
        "v7",
        B,
    )

    # And once the model image is scanned, the next pod mounting it is quiet
    scan_recorder(
        ecr_scan(digest=B, tags=["v7"], time="2026-11-20T09:40:00Z", counts=PASSING, repository="shop/models")
    )
    stack.received_alerts()
    audit_watcher(envelope([at(with_image_volume(pod, f"{ECR}/shop/models:v7"), "09:45:00")]))
    assert deployment_alerts(stack) == []
