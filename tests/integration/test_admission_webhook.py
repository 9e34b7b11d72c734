"""The admission webhook through its real server over HTTPS, as kube-apiserver calls it, on a ledger that the
real push guard and scan recorder wrote from ECR events (DynamoDB Local; ECR and SNS on a moto server)."""

from __future__ import annotations

import base64
import copy
import datetime
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import cold_start
from tests.support.admission import (
    ApiServerClient,
    Certificates,
    RunningServer,
    admission_review,
    admission_server,
    free_port,
    in_process_server,
    make_certificates,
    patched,
)
from tests.support.audit import ECR
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import FakeLambdaContext
from tests.support.multiarch import Build, build, build_pushes, put_build
from tests.support.requests import RequestLog, dynamodb_operations
from tests.support.stack import REGION, Stack, create_stack
from tests.support.template import REPO_ROOT

SCANNED = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
FAILING = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
MOVED_TO = "sha256:a4e55cef664c9bd4a21187ba3e2c7a0db0a1264d5ae831932e816ac509aa5916"
MIGRATIONS = "sha256:" + "1" * 64
FLUENT_BIT = "sha256:" + "2" * 64
DEBUG_TOOLS = "sha256:" + "3" * 64
UNKNOWN = "sha256:" + "9" * 64
ORIGINALS = "tagwarden.io/original-images"


@pytest.fixture(scope="module")
def ledger(dynamodb_local_endpoint: str, moto_server_endpoint: str) -> Iterator[tuple[Stack, Build]]:
    """The ledger as the functions leave it after CI's pushes and the scans (and one attacker move)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
        for service in ("SNS", "SQS", "ECR"):
            patch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_server_endpoint)
        stack = create_stack(f"twadm{int(time.time() * 1000) % 10**9}")
        context = FakeLambdaContext()
        push = cold_start("push_guard", stack.environment(), context)
        scan = cold_start("scan_recorder", stack.environment(), context)
        at = iter(f"2026-11-20T09:{minute:02d}:00Z" for minute in range(60))
        for repository, tag, digest, counts in (
            ("shop/api", "1.4.0", SCANNED, {"HIGH": 2, "MEDIUM": 7}),
            ("shop/api", "2.0.0", FAILING, {"CRITICAL": 1}),
            ("shop/migrations", "1.4.0", MIGRATIONS, {}),
            ("platform/fluent-bit", "3.1.9", FLUENT_BIT, {"LOW": 3}),
            ("platform/debug-tools", "2024.11", DEBUG_TOOLS, None),
        ):
            push(ecr_image_action(tag=tag, digest=digest, time=next(at), repository=repository))
            if repository == "shop/api" and tag == "1.4.0":
                for other in ("latest", "stable"):
                    push(ecr_image_action(tag=other, digest=digest, time=next(at), repository=repository))
            if counts is not None:
                scan(ecr_scan(digest=digest, tags=[tag], time=next(at), counts=counts, repository=repository))
        # The attacker moves `stable` to content that was never scanned.
        push(ecr_image_action(tag="stable", digest=MOVED_TO, time=next(at), repository="shop/api"))
        # A multi-platform build of shop/web, both platforms scanned clean.
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=f"shop/web-{stack.table_name}")
        web = build(f"web {stack.table_name}")
        repository = f"shop/web-{stack.table_name}"
        put_build(ecr, repository, web, tag="3.0.0")
        for event in build_pushes(web, "3.0.0", next(at), repository=repository):
            push(event)
        for platform in web.platforms:
            scan(ecr_scan(digest=web.digest(platform), tags=[], time=next(at), counts={}, repository=repository))
        yield stack, web


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _environment(stack: Stack, endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "LEDGER_TABLE_NAME": stack.table_name,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_REGION": REGION,
        **extra,
    }


@pytest.fixture(scope="module")
def server(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path_factory: Any
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("logs") / "webhook.log"
    with admission_server(certificates, _environment(ledger[0], dynamodb_local_endpoint), log) as running:
        yield running


@pytest.fixture(scope="module")
def pinning_server(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path_factory: Any
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("logs") / "pinning.log"
    environment = _environment(ledger[0], dynamodb_local_endpoint, ADMISSION_PIN_TEMPLATES="true")
    with admission_server(certificates, environment, log) as running:
        yield running


def _pod(image: str, *, uid: str = "7d9f3c1e-2b4a-4c6d-8e0f-1a2b3c4d5e6f") -> dict[str, Any]:
    review = admission_review("pod_create_generate_name")
    review["request"]["uid"] = uid
    review["request"]["object"]["spec"]["containers"][0]["image"] = image
    return review


def _operations(response: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(base64.b64decode(response["patch"])) if "patch" in response else []


# --- Pods: pinned, verified, denied ----------------------------------------------------------------------


def test_a_controller_pod_with_only_generate_name_is_pinned_to_the_scanned_digest(server: RunningServer) -> None:
    review = admission_review("pod_create_generate_name")
    assert "name" not in review["request"]["object"]["metadata"]

    response = server.client.review(review)

    assert response["allowed"] is True
    pod = patched(review, response)
    assert pod["spec"]["containers"][0]["image"] == f"{ECR}/shop/api:latest@{SCANNED}"
    originals = json.loads(pod["metadata"]["annotations"][ORIGINALS])
    assert originals == {"/spec/containers/0/image": f"{ECR}/shop/api:latest"}
    [line] = server.decisions(review["request"]["uid"])
    assert line["decision"] == "pin" and line["digest"] == SCANNED and line["name"] == "api-7d9f8c6b5d-"
    assert (line["namespace"], line["kind"], line["container"]) == ("shop", "Pod", "api")
    assert line["AdmissionDecisions"] == 1 and line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Tagwarden"


def test_reinvocation_re_verifies_a_pinned_pod_and_changes_nothing(server: RunningServer) -> None:
    review = admission_review("pod_create_generate_name")
    first = server.client.review(review)
    again = copy.deepcopy(review)
    again["request"]["uid"] = "c0ffee00-1111-4222-8333-444455556666"
    again["request"]["object"] = patched(review, first)

    response = server.client.review(again)

    assert response["allowed"] is True and "patch" not in response
    [line] = server.decisions(again["request"]["uid"])
    assert line["decision"] == "verify" and line["digest"] == SCANNED


def test_init_containers_and_native_sidecars_are_pinned_too(server: RunningServer) -> None:
    review = admission_review("pod_create_sidecars")

    response = server.client.review(review)

    pod = patched(review, response)
    images = [c["image"] for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]]
    assert images == [
        f"{ECR}/shop/migrations:1.4.0@{MIGRATIONS}",
        f"{ECR}/platform/fluent-bit:3.1.9@{FLUENT_BIT}",
        f"{ECR}/shop/api:latest@{SCANNED}",
    ]
    assert pod["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    assert len(json.loads(pod["metadata"]["annotations"][ORIGINALS])) == 3


def test_an_unscanned_ephemeral_container_is_denied_in_enforce_and_warned_in_warn(server: RunningServer) -> None:
    review = admission_review("pod_ephemeralcontainers_update")

    denied = server.client.review(review, "enforce")
    review["request"]["uid"] = "e0e0e0e0-0000-4000-8000-000000000001"
    warned = server.client.review(review, "warn")

    assert denied["allowed"] is False and denied["status"]["code"] == 403
    assert "debugger-wdvdl" in denied["status"]["message"] and "unscanned" in denied["status"]["message"]
    assert "wait for its scan" in denied["status"]["message"]
    assert warned["allowed"] is True and "patch" not in warned
    assert any("debugger-wdvdl" in warning for warning in warned["warnings"])
    # Through the subresource only ephemeral containers change: the pod's own are not judged again.
    assert {line["container"]: line["decision"] for line in server.decisions(review["request"]["uid"])} == {
        "debugger-wdvdl": "warn"
    }


def test_a_scanned_ephemeral_container_is_pinned_without_touching_annotations(server: RunningServer) -> None:
    review = admission_review("pod_ephemeralcontainers_update")
    review["request"]["object"]["spec"]["ephemeralContainers"][0]["image"] = f"{ECR}/platform/fluent-bit:3.1.9"

    response = server.client.review(review)

    assert [op["path"] for op in _operations(response)] == ["/spec/ephemeralContainers/0/image"]
    pod = patched(review, response)
    assert pod["spec"]["ephemeralContainers"][0]["image"] == f"{ECR}/platform/fluent-bit:3.1.9@{FLUENT_BIT}"


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (f"{ECR}/shop/api:2.0.0", "failing verdict"),
        (f"{ECR}/shop/api:stable", "tag moved after its scan"),
        (f"{ECR}/shop/api:never-pushed", "unknown tag"),
        (f"{ECR}/shop/api@{UNKNOWN}", "unknown digest"),
        (f"{ECR}/shop/api:latest@{FAILING}", "failing verdict"),
        (f"sha256:{'a' * 64}", "bare image id"),
        ("a" * 64, "bare image id"),
        (f"{ECR}/Shop/API:latest", "unparseable reference"),
    ],
)
def test_what_was_not_scanned_and_passed_is_denied_in_enforce_and_warned_in_warn(
    server: RunningServer, image: str, problem: str
) -> None:
    review = _pod(image)

    denied = server.client.review(review, "enforce")
    review["request"]["uid"] = "b0b0b0b0-0000-4000-8000-000000000002"
    warned = server.client.review(review, "warn")

    assert denied["allowed"] is False and problem in denied["status"]["message"]
    assert warned["allowed"] is True and problem in " ".join(warned["warnings"])
    patched(review, warned)


def test_a_tag_moved_after_its_scan_names_the_scanned_digest_to_deploy(server: RunningServer) -> None:
    response = server.client.review(_pod(f"{ECR}/shop/api:stable"))

    assert f"{ECR}/shop/api@{SCANNED}" in response["status"]["message"]


def test_tag_at_digest_is_judged_by_its_digest(server: RunningServer) -> None:
    review = _pod(f"{ECR}/shop/api:stable@{SCANNED}")

    response = server.client.review(review)

    # `stable` now names unscanned content, but the runtime pulls the scanned digest written here.
    assert response["allowed"] is True and "patch" not in response


def test_a_multi_platform_image_is_pinned_to_its_index_digest(
    server: RunningServer, ledger: tuple[Stack, Build]
) -> None:
    stack, web = ledger
    review = _pod(f"{ECR}/shop/web-{stack.table_name}:3.0.0")

    response = server.client.review(review)

    pod = patched(review, response)
    assert pod["spec"]["containers"][0]["image"].endswith(f":3.0.0@{web.index_digest}")


def test_forged_annotations_never_turn_a_deny_into_an_allow_and_are_replaced(server: RunningServer) -> None:
    forged = {
        ORIGINALS: json.dumps({"/spec/containers/0/image": f"{ECR}/shop/api:2.0.0", "/spec/x": "y"}),
        "tagwarden.io/verified": "true",
        "tagwarden.io/mode": "off",
    }
    failing = _pod(f"{ECR}/shop/api:2.0.0")
    failing["request"]["object"]["metadata"]["annotations"] = dict(forged)
    passing = _pod(f"{ECR}/shop/api:latest", uid="f0f0f0f0-0000-4000-8000-000000000003")
    passing["request"]["object"]["metadata"]["annotations"] = dict(forged)

    denied = server.client.review(failing)
    allowed = server.client.review(passing)

    assert denied["allowed"] is False
    annotations = patched(passing, allowed)["metadata"]["annotations"]
    assert annotations == {
        ORIGINALS: json.dumps({"/spec/containers/0/image": f"{ECR}/shop/api:latest"}, separators=(",", ":"))
    }


def test_a_dry_run_is_answered_normally(server: RunningServer) -> None:
    review = admission_review("pod_create_dry_run")

    response = server.client.review(review)

    assert patched(review, response)["spec"]["containers"][0]["image"].endswith(f"@{SCANNED}")
    [line] = server.decisions(review["request"]["uid"])
    assert line["dry_run"] is True


def test_images_outside_watched_registries_are_left_alone(server: RunningServer) -> None:
    review = _pod("docker.io/library/nginx:1.27")

    response = server.client.review(review)

    assert response["allowed"] is True and "patch" not in response


# --- Workload templates: warnings, not patches (unless asked) --------------------------------------------


def test_templates_get_warnings_not_patches(server: RunningServer) -> None:
    cronjob = admission_review("cronjob_create")
    deployment = admission_review("deployment_create")
    deployment["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{ECR}/shop/api:2.0.0"

    passing = server.client.review(cronjob, "enforce")
    failing = server.client.review(deployment, "enforce")

    assert passing["allowed"] is True and "patch" not in passing and "warnings" not in passing
    assert failing["allowed"] is True and "patch" not in failing
    assert "failing verdict" in failing["warnings"][0] and "its pods will be denied here" in failing["warnings"][0]


def test_with_pin_templates_a_cronjob_template_is_pinned(pinning_server: RunningServer) -> None:
    review = admission_review("cronjob_create")

    response = pinning_server.client.review(review)

    cronjob = patched(review, response)
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{ECR}/shop/api:latest@{SCANNED}"
    assert ORIGINALS in cronjob["metadata"]["annotations"]


def test_a_job_template_is_never_mutated_on_update(pinning_server: RunningServer) -> None:
    review = admission_review("job_update")
    unchanged = pinning_server.client.review(review)
    review["request"]["uid"] = "d0d0d0d0-0000-4000-8000-000000000004"
    review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{ECR}/shop/api:1.4.0"
    changed = pinning_server.client.review(review)

    assert unchanged["allowed"] is True and "patch" not in unchanged
    assert changed["allowed"] is True and "patch" not in changed
    patched(review, changed)


# --- Bad input, health, faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            json.dumps(
                {**admission_review("pod_create_generate_name"), "apiVersion": "admission.k8s.io/v1beta1"}
            ).encode(),
            "apiVersion",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {**admission_review("pod_create_generate_name")["request"], "uid": ""},
                }
            ).encode(),
            "uid",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request"),
    ],
)
def test_a_malformed_review_is_a_400_with_a_message(server: RunningServer, body: bytes, says: str) -> None:
    status, answer = server.client.request("POST", "/admit/enforce?timeout=5s", body)

    assert status == 400 and says in answer["error"]


def test_unknown_kinds_are_allowed_untouched(server: RunningServer) -> None:
    review = admission_review("pod_create_generate_name")
    review["request"]["kind"] = {"group": "", "version": "v1", "kind": "ConfigMap"}
    review["request"]["object"] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}

    assert server.client.review(review) == {"uid": review["request"]["uid"], "allowed": True}


def test_the_certificate_answers_for_the_service_name_only(server: RunningServer, certificates: Certificates) -> None:
    impostor = ApiServerClient(server.client.port, certificates.ca, host="tagwarden-admission.default.svc")

    with pytest.raises(ssl.SSLCertVerificationError):
        impostor.request("GET", "/healthz")


def test_a_pod_update_is_judged_on_the_images_it_changes(server: RunningServer) -> None:
    created = admission_review("pod_create_dry_run")  # a named pod
    running = patched(created, server.client.review(created))
    relabelled = copy.deepcopy(running)
    relabelled["metadata"]["labels"]["team"] = "checkout"
    update = copy.deepcopy(created)
    update["request"].update(
        {"uid": "11111111-2222-4333-8444-555566667777", "operation": "UPDATE", "object": relabelled, "dryRun": False}
    )
    update["request"]["oldObject"] = running
    changed = copy.deepcopy(update)
    changed["request"]["uid"] = "11111111-2222-4333-8444-555566667778"
    changed["request"]["object"]["spec"]["containers"][0]["image"] = f"{ECR}/shop/api:2.0.0"

    unchanged_answer = server.client.review(update)
    changed_answer = server.client.review(changed)

    assert unchanged_answer["allowed"] is True and "patch" not in unchanged_answer
    assert [line["decision"] for line in server.decisions(update["request"]["uid"])] == ["skip"]
    assert changed_answer["allowed"] is False and "failing verdict" in changed_answer["status"]["message"]


def test_health_and_readiness(server: RunningServer) -> None:
    assert server.client.request("GET", "/healthz") == (200, {"status": "alive"})
    assert server.client.request("GET", "/readyz") == (200, {"ready": True})
    assert server.client.request("POST", "/admit/off?timeout=5s", b"{}")[0] == 404


def test_an_unreadable_ledger_denies_in_enforce_warns_in_warn_and_stays_ready(
    ledger: tuple[Stack, Build], certificates: Certificates, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    environment = _environment(ledger[0], nobody, ADMISSION_LEDGER_TIMEOUT_SECONDS="0.5")
    with admission_server(certificates, environment, tmp_path / "down.log") as down:
        started = time.monotonic()
        denied = down.client.review(_pod(f"{ECR}/shop/api:latest"), "enforce")
        elapsed = time.monotonic() - started
        warned = down.client.review(_pod(f"{ECR}/shop/api:latest", uid="a0a0a0a0-0000-4000-8000-000000000005"), "warn")
        ready = down.client.request("GET", "/readyz")

    assert denied["allowed"] is False and "ledger unavailable" in denied["status"]["message"]
    assert warned["allowed"] is True and "patch" not in warned and "ledger unavailable" in warned["warnings"][0]
    # Readiness follows the server, not the ledger: a ledger outage must not empty the Service's endpoints
    # (failurePolicy would then refuse every pod of warn namespaces too).
    assert ready == (200, {"ready": True})
    assert elapsed < 5
    assert any(line.get("AdmissionLedgerFailures") == 1 for line in down.lines())


def test_sigterm_drains_closes_kept_connections_then_stops(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    environment = _environment(ledger[0], dynamodb_local_endpoint)
    body = json.dumps(_pod(f"{ECR}/shop/api:latest")).encode()
    with admission_server(certificates, environment, tmp_path / "stop.log", drain_seconds=1.0) as running:
        # The API server keeps its connections: one stays idle through the stop, one is used while draining.
        idle, busy = running.client.connection(), running.client.connection()
        for connection in (idle, busy):
            connection.request("POST", "/admit/enforce?timeout=5s", body=body)
            assert connection.getresponse().read()
        stopped_at = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = running.client.request("GET", "/readyz")
        busy.request("POST", "/admit/enforce?timeout=5s", body=body)
        answer = busy.getresponse()
        still_answers = json.loads(answer.read())["response"]
        code = running.process.wait(timeout=10)
        stopped_after = time.monotonic() - stopped_at

    assert draining == (503, {"ready": False})
    assert still_answers["allowed"] is True and answer.getheader("Connection") == "close"
    # Not the 30 s an idle kept connection would hold the server for.
    assert code == 0 and stopped_after < 5
    assert [line["message"] for line in running.lines() if line["message"] != "admission decision"][-2:] == [
        "draining",
        "stopped",
    ]


def test_a_review_costs_one_ledger_request_and_none_without_judged_images(
    ledger: tuple[Stack, Build], tmp_path: Path
) -> None:
    requests = RequestLog()
    requests.attach()
    lines: list[str] = []
    with in_process_server(ledger[0].table_name, tmp_path, lines.append, AWS_REGION=REGION) as client:
        with requests.record() as three_images:
            client.review(admission_review("pod_create_sidecars"))
        with requests.record() as out_of_scope:
            client.review(_pod("docker.io/library/nginx:1.27"))

    assert dynamodb_operations(three_images) == Counter({"BatchGetItem": 1})
    assert out_of_scope == []
    decisions = [json.loads(line) for line in lines]
    assert [d["decision"] for d in decisions] == ["pin", "pin", "pin", "skip"]


def test_a_renewed_serving_certificate_is_served_without_a_restart(ledger: tuple[Stack, Build], tmp_path: Path) -> None:
    with in_process_server(ledger[0].table_name, tmp_path, lambda _: None, AWS_REGION=REGION) as old_client:
        assert old_client.request("GET", "/healthz")[0] == 200
        time.sleep(0.01)  # a distinct modification time
        renewed = make_certificates(tmp_path)  # a new CA and certificate, written over the served files
        new_client = ApiServerClient(old_client.port, renewed.ca)

        assert new_client.request("GET", "/healthz")[0] == 200
        with pytest.raises(ssl.SSLCertVerificationError):
            old_client.request("GET", "/healthz")


def test_the_server_refuses_to_start_without_its_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tagwarden.admission", "--tls-cert", "x", "--tls-key", "y"],
        env={"PYTHONPATH": str(REPO_ROOT / "layers" / "tagwarden" / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2 and "LEDGER_TABLE_NAME: is not set" in result.stderr


# --- What one client can hold: connections, slow requests, large bodies (red team H1) ------------------


def _tls(client: ApiServerClient) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", client.port), timeout=10)
    return client.context.wrap_socket(raw, server_hostname=client.host)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """How long until the server closes `sock` (None: still open after `seconds`)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - started


def test_connections_past_the_cap_are_closed_at_once_and_served_again_when_freed(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    environment = _environment(ledger[0], dynamodb_local_endpoint)
    options = ("--max-connections", "4", "--request-seconds", "30")
    with admission_server(certificates, environment, tmp_path / "cap.log", options=options) as running:
        held = [socket.create_connection(("127.0.0.1", running.client.port)) for _ in range(4)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", running.client.port))
        closed_after = _closed_within(extra, 3)
        for sock in held:
            sock.close()
        time.sleep(0.3)
        answer = running.client.review(_pod(f"{ECR}/shop/api:1.4.0"))

    assert closed_after is not None and closed_after < 1
    assert answer["allowed"] is True
    assert any("more than 4 connections" in line.get("problem", "") for line in running.lines())


def test_a_slow_loris_is_cut_off_at_the_request_deadline_while_reviews_go_on(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    environment = _environment(ledger[0], dynamodb_local_endpoint)
    options = ("--request-seconds", "1.5")
    with admission_server(certificates, environment, tmp_path / "loris.log", options=options) as running:
        headers, body = _tls(running.client), _tls(running.client)
        headers.sendall(b"POST /admit/enforce HTTP/1.1\r\n")
        body.sendall(b"POST /admit/enforce HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        started = time.monotonic()
        cut: dict[str, float] = {}
        while len(cut) < 2 and time.monotonic() - started < 8:
            for name, sock in (("headers", headers), ("body", body)):
                if name in cut:
                    continue
                try:
                    sock.sendall(b"X-Drip: 1\r\n" if name == "headers" else b" ")  # one piece every 0.25 s
                except OSError:
                    cut[name] = time.monotonic() - started
            time.sleep(0.25)
        answer = running.client.review(_pod(f"{ECR}/shop/api:1.4.0"))

    # Each socket read was quick (0.25 s apart), so only a deadline for the whole request stops them.
    assert set(cut) == {"headers", "body"} and max(cut.values()) < 4, cut
    assert answer["allowed"] is True


def test_a_body_larger_than_the_largest_review_is_refused_unread(server: RunningServer) -> None:
    from tagwarden.events.admission import MAX_REVIEW_BYTES

    sock = _tls(server.client)
    sock.sendall(
        f"POST /admit/enforce?timeout=5s HTTP/1.1\r\nHost: {server.client.host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_REVIEW_BYTES + 1}\r\n\r\n".encode()
    )
    reply = sock.recv(65536)
    sock.close()

    assert reply.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in reply
    assert MAX_REVIEW_BYTES < 7 * 1024 * 1024  # 2 x the API server's 3 MiB request limit, plus the envelope


def test_the_largest_reviews_sent_at_once_are_all_answered(server: RunningServer) -> None:
    from tagwarden.events.admission import MAX_REVIEW_BYTES

    review = _pod(f"{ECR}/shop/api:1.4.0")
    review["request"]["object"]["metadata"]["annotations"] = {"filler": ""}
    size = len(json.dumps(review))
    review["request"]["object"]["metadata"]["annotations"]["filler"] = "x" * (MAX_REVIEW_BYTES - size - 64)
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: answers.append(server.client.review(review))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 4 and all(answer["allowed"] for answer in answers)


# --- Input the API server would never send, and faults (red team lows) ----------------------------------


@pytest.mark.parametrize("annotations", [["tagwarden.io/original-images"], "x", {"tagwarden.io/mode": 1}])
def test_annotations_that_are_not_a_map_of_strings_are_a_400(server: RunningServer, annotations: object) -> None:
    review = _pod(f"{ECR}/shop/api:1.4.0")
    review["request"]["object"]["metadata"]["annotations"] = annotations
    status, answer = server.client.request("POST", "/admit/enforce?timeout=5s", json.dumps(review).encode())

    assert status == 400 and "annotations is not a map of strings" in answer["error"]


def test_more_distinct_images_than_one_read_holds_are_refused_as_such(server: RunningServer) -> None:
    review = _pod(f"{ECR}/shop/api:1.4.0")
    containers = review["request"]["object"]["spec"]["containers"]
    template = containers[0]
    containers[:] = [{**template, "name": f"c{i}", "image": f"{ECR}/shop/api:t{i}"} for i in range(101)]
    denied = server.client.review(review, "enforce")
    warned = server.client.review(review, "warn")

    assert denied["allowed"] is False and "too many images" in denied["status"]["message"]
    assert "ledger unavailable" not in denied["status"]["message"]
    assert len(denied["status"]["message"]) < 4000  # ten listed, then a count
    assert warned["allowed"] is True and len(warned["warnings"]) == 10
    assert "more images with problems" in warned["warnings"][-1]


# --- Image volumes (red team M1) --------------------------------------------------------------------------


def _with_image_volume(reference: str, uid: str) -> dict[str, Any]:
    review = _pod(f"{ECR}/shop/api:1.4.0@{SCANNED}", uid=uid)
    spec = review["request"]["object"]["spec"]
    spec["volumes"] = [*spec.get("volumes", []), {"name": "payload", "image": {"reference": reference}}]
    spec["containers"][0]["volumeMounts"] = [
        *spec["containers"][0].get("volumeMounts", []),
        {"name": "payload", "mountPath": "/payload"},
    ]
    return review


def test_an_image_volume_is_pinned_like_a_container_image(server: RunningServer) -> None:
    review = _with_image_volume(f"{ECR}/shop/api:1.4.0", "b1b1b1b1-0000-4000-8000-000000000001")
    answer = server.client.review(review)
    pod = patched(review, answer)
    index = len(pod["spec"]["volumes"]) - 1

    assert answer["allowed"] is True
    assert {
        "op": "replace",
        "path": f"/spec/volumes/{index}/image/reference",
        "value": f"{ECR}/shop/api:1.4.0@{SCANNED}",
    } in _operations(answer)
    assert json.loads(pod["metadata"]["annotations"][ORIGINALS]) == {
        f"/spec/volumes/{index}/image/reference": f"{ECR}/shop/api:1.4.0"
    }


def test_an_image_volume_with_a_moved_tag_is_denied_in_enforce_and_warned_in_warn(server: RunningServer) -> None:
    denied = server.client.review(_with_image_volume(f"{ECR}/shop/api:stable", "b1b1b1b1-0000-4000-8000-000000000002"))
    warned = server.client.review(
        _with_image_volume(f"{ECR}/shop/api:stable", "b1b1b1b1-0000-4000-8000-000000000003"), "warn"
    )

    assert denied["allowed"] is False and "image volume payload" in denied["status"]["message"]
    assert "tag moved after its scan" in denied["status"]["message"]
    assert warned["allowed"] is True and any("image volume payload" in w for w in warned["warnings"])


# --- Credentials from EKS Pod Identity's agent (red team M3) ---------------------------------------------


class _CredentialAgent(http.server.ThreadingHTTPServer):
    """Pod Identity's agent: the first answer is credentials inside botocore's mandatory refresh window (so
    every use refreshes them), every later request hangs."""

    daemon_threads = True
    served = 0


class _AgentHandler(http.server.BaseHTTPRequestHandler):
    server: _CredentialAgent

    def do_GET(self) -> None:
        self.server.served += 1
        if self.server.served > 1:
            time.sleep(30)
            return
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        body = json.dumps(
            {"AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "testing",
             "Expiration": f"{expires:%Y-%m-%dT%H:%M:%SZ}"}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


_STATIC_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def test_a_hanging_credential_agent_never_holds_a_review_past_the_api_servers_timeout(
    ledger: tuple[Stack, Build], certificates: Certificates, dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    agent = _CredentialAgent(("127.0.0.1", 0), _AgentHandler)
    threading.Thread(target=agent.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.pod-identity-token")
    environment = _environment(
        ledger[0],
        dynamodb_local_endpoint,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{agent.server_address[1]}/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token),
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        with admission_server(
            certificates, environment, tmp_path / "agent.log", without=_STATIC_CREDENTIALS
        ) as running:
            started = time.monotonic()
            denied = running.client.review(_pod(f"{ECR}/shop/api:1.4.0"))
            elapsed = time.monotonic() - started
    finally:
        agent.shutdown()

    assert elapsed < 5
    assert denied["allowed"] is False and "ledger unavailable" in denied["status"]["message"]


@pytest.mark.parametrize("agent_answers", [True, False])
def test_missing_credentials_at_startup_exit_2_with_one_line(
    certificates: Certificates, tmp_path: Path, agent_answers: bool
) -> None:
    if agent_answers:  # the agent is there, the projected token file is not
        agent = _CredentialAgent(("127.0.0.1", 0), _AgentHandler)
        threading.Thread(target=agent.serve_forever, daemon=True).start()
        port = agent.server_address[1]
    else:  # the token file is there, nothing listens where the agent should
        port = free_port()
        (tmp_path / "token").write_text("token")
    environment = {key: value for key, value in os.environ.items() if key not in _STATIC_CREDENTIALS}
    environment.update(
        PYTHONPATH=str(REPO_ROOT / "layers" / "tagwarden" / "src"),
        LEDGER_TABLE_NAME="ledger",
        AWS_REGION=REGION,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{port}/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tmp_path / "token"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    command = [sys.executable, "-m", "tagwarden.admission", "--port", str(free_port()), "--host", "127.0.0.1",
               "--tls-cert", str(certificates.certificate), "--tls-key", str(certificates.key)]  # fmt: skip
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tagwarden admission: AWS credentials:")
    assert "Traceback" not in result.stderr
