"""The webhook's image: admission/Dockerfile starts the command the server's tests start, from a pinned base,
as a numeric non-root user; hadolint passes; and `make image` (admission/image.sh) finds an engine that
answers or says clearly that there is none. No engine runs on this machine, so the build-and-push path runs
with a stand-in engine that records what it is asked, against a moto server's CloudFormation and ECR."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from tagwarden import __version__
from tagwarden.cli.admission import (
    NAME,
    NAMESPACE,
    RUN_AS,
    SERVER_COMMAND,
    SERVER_PORT,
    ManifestSettings,
    build_manifests,
    make_tls_material,
    server_environment,
)

from tests.integration.test_cli import create_cloudformation_stack
from tests.support.stack import REGION
from tests.support.template import REPO_ROOT

DOCKERFILE = REPO_ROOT / "admission" / "Dockerfile"
IMAGE_SCRIPT = REPO_ROOT / "admission" / "image.sh"
BIN = Path(sys.executable).parent


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    assert not pending, "a continuation line ends the file"
    parsed = []
    for text in joined:
        keyword, _, arguments = text.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def final_stage(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    start = max(index for index, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[start:]


def test_the_images_entry_point_is_the_servers_command() -> None:
    [entrypoint] = [arguments for keyword, arguments in final_stage(instructions()) if keyword == "ENTRYPOINT"]

    # Exec form (JSON): no shell between the runtime and the server, so signals reach it.
    assert json.loads(entrypoint) == list(SERVER_COMMAND)
    assert SERVER_COMMAND[:3] == ("python", "-m", "tagwarden.admission")
    assert not [keyword for keyword, _ in final_stage(instructions()) if keyword == "CMD"]


def test_the_base_image_is_pinned_by_digest_and_the_user_is_numeric_and_not_root() -> None:
    parsed = instructions()
    arguments = dict(arg.split("=", 1) for keyword, arg in parsed if keyword == "ARG" and "=" in arg)
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], arg.split()[0]) for k, arg in parsed if k == "FROM"
    ]
    [user] = [arg for keyword, arg in final_stage(parsed) if keyword == "USER"]
    [expose] = [arg for keyword, arg in final_stage(parsed) if keyword == "EXPOSE"]

    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"python:3\.13-slim@sha256:[0-9a-f]{64}", base), base
    assert user == f"{RUN_AS}:{RUN_AS}"
    assert expose == str(SERVER_PORT)


def test_the_package_is_installed_at_the_lock_files_versions() -> None:
    runs = [arguments for keyword, arguments in instructions() if keyword == "RUN"]
    copies = [arguments for keyword, arguments in instructions() if keyword == "COPY"]

    [install] = [run for run in runs if "pip install" in run]
    assert "--constraint constraints.txt" in install
    assert "--only-binary=:all:" in install
    assert any("layers/tagwarden/constraints.txt" in copy for copy in copies)
    # The build context is the repository root; .dockerignore lets only the package through.
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1:2] == ["*"] and "!layers/tagwarden/src/" in ignored


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- make image ---------------------------------------------------------------------------------------------


def run_image_script(environment: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **environment,
        # Only the stand-ins (and the basics bash needs): no real engine on this machine can answer.
        "PATH": f"{path}:/usr/bin:/bin",
        "PY": sys.executable,
        "TAGWARDEN": str(BIN / "tagwarden"),
    }
    return subprocess.run(
        ["/bin/bash", str(IMAGE_SCRIPT)], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def stand_in(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(0o755)


def test_without_an_engine_that_answers_make_image_says_so_and_fails(tmp_path: Path) -> None:
    stand_in(
        tmp_path, "docker", 'if [ "$1" = info ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi\n'
    )

    result = run_image_script({"STACK_NAME": "tagwarden", "CONTAINER_ENGINES": "docker podman buildah"}, tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "no container engine answers on this machine" in result.stderr
    assert "docker: installed, but 'docker info' fails" in result.stderr
    assert "podman: not installed" in result.stderr
    assert "make image STACK_NAME=<stack>" in result.stderr


def test_make_target_runs_the_script() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()

    assert "bash admission/image.sh" in makefile
    assert "$(BIN)/hadolint admission/Dockerfile" in makefile


@pytest.fixture
def registry(moto_server_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A stack on the moto server whose webhook repository exists in its ECR; returns the repository URI."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_endpoint)
    name = f"tagwarden-admission-{uuid.uuid4().hex[:8]}"
    uri = boto3.client("ecr", region_name=REGION).create_repository(
        repositoryName=name, imageTagMutability="IMMUTABLE"
    )["repository"]["repositoryUri"]
    create_cloudformation_stack(name, {"AdmissionImageRepositoryUri": uri})
    return uri


PUSH = """\
import json, sys
import boto3
repository, _, tag = sys.argv[1].rpartition(":")
registry, _, name = repository.partition("/")
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2},
    "layers": []})
boto3.client("ecr", region_name=registry.split(".")[3]).put_image(
    repositoryName=name, imageManifest=manifest, imageTag=tag,
    imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")
"""


def test_make_image_builds_from_the_repository_root_and_pushes_to_the_stacks_repository(
    registry: str, tmp_path: Path
) -> None:
    log = tmp_path / "engine.log"
    push = tmp_path / "push.py"
    push.write_text(PUSH)
    stand_in(
        tmp_path,
        "podman",
        f'echo "$PWD $*" >> {log}\n'
        'case "$1" in\n'
        f"  login) cat > {tmp_path}/password ;;\n"
        f'  push) {shlex.quote(sys.executable)} {push} "$2" ;;\n'
        "esac\n",
    )
    stack = registry.rpartition("/")[2]

    result = run_image_script(
        {"STACK_NAME": stack, "CONTAINER_ENGINES": "docker podman", "PLATFORM": "linux/arm64", "REGION": REGION},
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    image = f"{registry}:{__version__}"
    calls = log.read_text().splitlines()
    assert calls == [
        f"{REPO_ROOT} info",
        f"{REPO_ROOT} login --username AWS --password-stdin {registry.partition('/')[0]}",
        f"{REPO_ROOT} build --platform linux/arm64 --file admission/Dockerfile --tag {image} .",
        f"{REPO_ROOT} push {image}",
    ]
    assert (tmp_path / "password").read_text().strip()  # ECR's token, decoded
    # The digest ECR gives the pushed tag (what the kubelet will pull), not one computed on this side.
    [detail] = boto3.client("ecr", region_name=REGION).describe_images(
        repositoryName=stack, imageIds=[{"imageTag": __version__}]
    )["imageDetails"]
    digest = detail["imageDigest"]
    assert f"==> pushed {registry}@{digest}" in result.stdout
    # The region it pushed to is the one the next command reads the stack in.
    assert f"admission manifests --stack-name {stack} --region {REGION} --image {registry}@{digest}" in result.stdout


# --- the image's command, run ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_over_tls(port: int, path: str, ca: bytes) -> bytes:
    """GET as the kubelet's probe or the API server would reach the pod, verified for the Service's name."""
    context = ssl.create_default_context(cadata=ca.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=f"{NAME}.{NAMESPACE}.svc") as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {NAME}.{NAMESPACE}.svc\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
        return answer


def test_the_entry_point_with_the_deployments_environment_serves_the_generated_certificate(tmp_path: Path) -> None:
    # The server is tagwarden.admission (the admission-core work); this runs wherever it is present.
    pytest.importorskip("tagwarden.admission")
    tls = make_tls_material(datetime.now(UTC), 1)
    certificate, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    certificate.write_bytes(tls.cert_pem)
    key.write_bytes(tls.key_pem)
    environment = server_environment(
        {"LedgerTableName": "tagwarden-ledger", "LedgerTableArn": f"arn:aws:dynamodb:{REGION}:111122223333:table/t"},
        {"ProtectedTagPatterns": "v*", "FailSeverity": "HIGH", "MonitoredAccounts": ""},
        None,
    )
    settings = ManifestSettings(image="example/image:1", environment=environment, tls=tls)
    [deployment] = [obj for obj in build_manifests(settings) if obj["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    pod_environment = {variable["name"]: variable["value"] for variable in container["env"]}
    port = free_port()
    # The image's command as it is, with this test's port and files, on loopback only.
    arguments = list(SERVER_COMMAND[1:])
    arguments[arguments.index("--port") + 1] = str(port)
    arguments[arguments.index("--tls-cert") + 1] = str(certificate)
    arguments[arguments.index("--tls-key") + 1] = str(key)
    env = {
        **os.environ,
        **pod_environment,
        # No ledger: nothing listens there (the liveness probe does not need one).
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
    }
    process = subprocess.Popen(
        [sys.executable, *arguments, "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        answer = b""
        while not answer:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with contextlib.suppress(OSError):
                answer = get_over_tls(port, "/healthz", tls.ca_pem)
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.1)
        assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n")[0]
    finally:
        process.terminate()
        process.wait(timeout=30)
