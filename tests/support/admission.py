"""The API server's side of the admission contract: a CA and serving certificate, the real webhook server in
its own process, and reviews POSTed the way kube-apiserver does (HTTPS, the Service's DNS name verified
against the caBundle, `?timeout=5s` appended)."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.events import EVENTS
from tests.support.template import REPO_ROOT

# The Service `tagwarden admission manifests` creates: tagwarden-admission in namespace tagwarden.
SERVICE_HOST = "tagwarden-admission.tagwarden.svc"
KUBERNETES_VERSION = "1.33"
REVIEWS = EVENTS / "admission"


def admission_review(name: str) -> dict[str, Any]:
    """A fresh copy of a sample AdmissionReview from `events/admission/`."""
    review: dict[str, Any] = json.loads((REVIEWS / f"{name}.json").read_text())
    return review


@dataclass(frozen=True)
class Certificates:
    """A CA (the webhook configuration's caBundle) and the server's certificate and key, as files."""

    ca: Path
    certificate: Path
    key: Path


def make_certificates(
    directory: Path, hosts: tuple[str, ...] = (SERVICE_HOST, f"{SERVICE_HOST}.cluster.local")
) -> Certificates:
    """A self-signed CA and a serving certificate for `hosts`, signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagwarden-admission-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ApiServerClient:
    """POSTs reviews as kube-apiserver does: TLS verified against the CA for the Service's DNS name, which is
    resolved to the loopback port (the cluster's DNS, here)."""

    def __init__(self, port: int, ca: Path, host: str = SERVICE_HOST) -> None:
        self.port = port
        self.host = host
        self.context = ssl.create_default_context(cafile=str(ca))

    def connection(self) -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=10)
        port = self.port
        # The name the certificate is checked against stays the Service's; only the address is loopback.
        connection._create_connection = lambda _address, *args: socket.create_connection(("127.0.0.1", port), *args)  # type: ignore[attr-defined]
        return connection

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        connection = self.connection()
        try:
            headers = {"Content-Type": "application/json", "Accept": "application/json, */*"}
            headers["User-Agent"] = "kube-apiserver-admission"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data else {}
        finally:
            connection.close()

    def review(self, review: Mapping[str, Any], mode: str = "enforce") -> dict[str, Any]:
        """POST one review; return its response (asserting the envelope the API server requires)."""
        status, body = self.request("POST", f"/admit/{mode}?timeout=5s", json.dumps(review).encode())
        assert status == 200, body
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        response: dict[str, Any] = body["response"]
        assert response["uid"] == review["request"]["uid"]
        return response


def patched(review: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the API server stores it: the response's JSONPatch applied, then validated (strict)."""
    obj = copy.deepcopy(review["request"]["object"])
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        operations = json.loads(base64.b64decode(response["patch"]))
        obj = jsonpatch.apply_patch(obj, operations)
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    result: dict[str, Any] = obj
    return result


@dataclass
class RunningServer:
    """The webhook server process and where its decision lines go."""

    process: subprocess.Popen[bytes]
    client: ApiServerClient
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line the server wrote to stdout so far."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def decisions(self, uid: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("message") == "admission decision" and line["uid"] == uid]


@contextlib.contextmanager
def admission_server(
    certificates: Certificates,
    environment: Mapping[str, str],
    log: Path,
    drain_seconds: float = 0.2,
    options: tuple[str, ...] = (),
    without: tuple[str, ...] = (),
) -> Iterator[RunningServer]:
    """`python -m tagwarden.admission` (the image's entry point) on a loopback port, until the block ends
    (`options` added to its command line, the variables in `without` taken out of its environment)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "layers" / "tagwarden" / "src"), **environment}
    for name in without:
        env.pop(name, None)
    command = [
        sys.executable, "-m", "tagwarden.admission", "--port", str(port), "--host", "127.0.0.1",
        "--tls-cert", str(certificates.certificate), "--tls-key", str(certificates.key),
        "--drain-seconds", str(drain_seconds), *options,
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = RunningServer(process, ApiServerClient(port, certificates.ca), log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the webhook server exited: {log.read_text()}")
            with contextlib.suppress(OSError):
                if server.client.request("GET", "/healthz")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the webhook server did not answer: {log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def in_process_server(
    table_name: str, directory: Path, write_line: Callable[[str], None], **settings: str
) -> Iterator[ApiServerClient]:
    """The same server and service as `python -m tagwarden.admission`, in a thread of this process: it then
    reads whatever ledger this process reaches (moto in process, DynamoDB Local), and its botocore events can
    be counted. Its AWS client is created here, so a request log must be attached before."""
    from tagwarden.admission.server import AdmissionServer, ServingCertificate
    from tagwarden.config import AdmissionConfig
    from tagwarden.services.wiring import build_admission

    certificates = make_certificates(directory)
    config = AdmissionConfig.from_env({"LEDGER_TABLE_NAME": table_name, **settings})
    certificate = ServingCertificate(str(certificates.certificate), str(certificates.key))
    server = AdmissionServer(("127.0.0.1", 0), build_admission(config, write_line), certificate)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield ApiServerClient(server.server_address[1], certificates.ca)
    finally:
        server.shutdown()
        server.server_close()
