"""Real OCI registries on loopback for the prepush tests and benchmark: Debian's `docker-registry` (distribution
2.8) with TLS from a CA made here, htpasswd (bcrypt) or token auth, or plain and anonymous; a token server
issuing the JWTs the registry verifies (Docker's token auth spec); and a pusher that puts images and
indexes there over the same protocol a build tool uses (blob uploads, manifest PUT).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
USERNAME = "ci"
PASSWORD = "s3cret-Passw0rd"
SERVICE = "tagwarden-test-registry"
ISSUER = "tagwarden-test-token-issuer"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


# --- certificates ----------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca_certificate(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class LoopbackCa:
    """A CA and a server certificate for 127.0.0.1, ::1 and localhost, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_ca(directory: Path) -> LoopbackCa:
    """Create a CA and a loopback server certificate it signs."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _ca_certificate(ca_key, "Tagwarden test CA")
    server_key = _key()
    now = dt.datetime.now(dt.UTC)
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(server_key))
    return LoopbackCa(ca_file, cert_file, key_file)


# --- token server ----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Docker's token auth: `GET /token?service=&scope=` with basic credentials answers a signed JWT.

    The registry trusts `signing_cert_file` (its `rootcertbundle`); the JWT carries that certificate in
    `x5c`. `field` is where the token goes in the answer: `token`, or OAuth2's `access_token`.
    """

    url: str
    signing_cert_file: Path
    requests: list[str] = field(default_factory=list)
    answer_field: str = "token"


def _token_handler(server: TokenServer, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> type[BaseHTTPRequestHandler]:
    chain = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append(self.path)
            auth = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
            if auth != expected:
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                return
            query = parse_qs(urlsplit(self.path).query)
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": USERNAME,
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
            header = {"typ": "JWT", "alg": "RS256", "x5c": chain}
            signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
            self._answer(200, {server.answer_field: f"{signing_input}.{_b64url(signature)}", "expires_in": 300})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextlib.contextmanager
def _serving(httpd: ThreadingHTTPServer) -> Iterator[None]:
    """Serve on a thread until the block ends."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def run_token_server(directory: Path, ca: LoopbackCa) -> Iterator[TokenServer]:
    """A token server on loopback over TLS (the test CA's server certificate)."""
    key = _key()
    cert = _ca_certificate(key, "Tagwarden test token signer")
    signing_cert_file = directory / "token-signer.pem"
    signing_cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    port = free_port()
    server = TokenServer(f"https://127.0.0.1:{port}/token", signing_cert_file)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _token_handler(server, key, cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert_file, ca.key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with _serving(httpd):
        yield server


# --- the registry ----------------------------------------------------------------------------------


@dataclass
class LocalRegistry:
    """A running docker-registry: where it answers and how a client authenticates."""

    host: str  # 127.0.0.1:<port>, as an image reference names it
    url: str
    ca_file: Path | None
    auth: str  # "anonymous", "basic" or "token"
    token_server: TokenServer | None = None
    credentials: tuple[str, str] = (USERNAME, PASSWORD)

    def pusher(self) -> Pusher:
        """A client that uploads blobs and manifests to this registry."""
        return Pusher(self)


def _config(
    storage: Path, port: int, ca: LoopbackCa | None, htpasswd: Path | None, token: TokenServer | None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if ca is not None:
        config["http"]["tls"] = {"certificate": str(ca.cert_file), "key": str(ca.key_file)}
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": SERVICE, "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {
            "token": {
                "realm": token.url,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(token.signing_cert_file),
            }
        }
    return config


def _tool(name: str) -> str:
    """The tool's full path (`make registry-tools` installs it)."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make registry-tools`")
    return path


@contextlib.contextmanager
def run_registry(
    directory: Path,
    *,
    ca: LoopbackCa | None = None,
    basic: tuple[str, str] | None = None,
    token: TokenServer | None = None,
) -> Iterator[LocalRegistry]:
    """Start docker-registry on a free loopback port (htpasswd auth for the `basic` user and password)."""
    directory.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if basic:
        line = subprocess.run(
            [_tool("htpasswd"), "-Bbn", *basic], check=True, capture_output=True, text=True
        ).stdout.strip()
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(line + "\n")
    port = free_port()
    config_file = directory / "config.yml"
    # JSON is YAML: no YAML writer needed.
    config_file.write_text(json.dumps(_config(directory / "storage", port, ca, htpasswd, token)))
    log = (directory / "registry.log").open("w")
    process = subprocess.Popen(
        [_tool("docker-registry"), "serve", str(config_file)], stdout=log, stderr=subprocess.STDOUT
    )
    scheme = "https" if ca is not None else "http"
    registry = LocalRegistry(
        f"127.0.0.1:{port}",
        f"{scheme}://127.0.0.1:{port}",
        ca.ca_file if ca is not None else None,
        "token" if token is not None else "basic" if basic else "anonymous",
        token,
        basic or (USERNAME, PASSWORD),
    )
    try:
        _wait_until_up(registry, process, directory / "registry.log")
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(registry: LocalRegistry, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            response = requests.get(f"{registry.url}/v2/", verify=str(registry.ca_file or True), timeout=2)
        except requests.ConnectionError:
            time.sleep(0.05)
            continue
        if "Docker-Distribution-API-Version" in response.headers:
            return
    raise RuntimeError(f"docker-registry did not answer in 20 s: {log.read_text()[-2000:]}")


# --- pushing -----------------------------------------------------------------------------------------


class Pusher:
    """Puts blobs, image manifests and indexes into a LocalRegistry as a build tool would."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self.session = requests.Session()
        self.session.verify = str(registry.ca_file) if registry.ca_file else True
        # Else REQUESTS_CA_BUNDLE, when set, would replace the session's CA (requests merges the environment last).
        self.session.trust_env = False
        self._tokens: dict[str, str] = {}

    def _auth(self, repository: str) -> dict[str, str]:
        if self.registry.auth == "basic":
            pair = ":".join(self.registry.credentials).encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if self.registry.auth == "token":
            assert self.registry.token_server is not None
            if repository not in self._tokens:
                answer = self.session.get(
                    self.registry.token_server.url,
                    params={"service": SERVICE, "scope": f"repository:{repository}:pull,push"},
                    auth=(USERNAME, PASSWORD),
                    timeout=10,
                )
                answer.raise_for_status()
                body = answer.json()
                self._tokens[repository] = body.get("token") or body["access_token"]
            return {"Authorization": f"Bearer {self._tokens[repository]}"}
        return {}

    def blob(self, repository: str, data: bytes) -> str:
        """Upload a blob (monolithic: POST for a session, PUT with the digest); its digest."""
        digest = sha256(data)
        started = self.session.post(
            f"{self.registry.url}/v2/{repository}/blobs/uploads/", headers=self._auth(repository), timeout=10
        )
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self.registry.url + location
        separator = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{separator}digest={digest}",
            data=data,
            headers={**self._auth(repository), "Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag (or its digest); the digest the registry reports."""
        response = self.session.put(
            f"{self.registry.url}/v2/{repository}/manifests/{reference}",
            data=body,
            headers={**self._auth(repository), "Content-Type": media_type},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        digest: str = response.headers["Docker-Content-Digest"]
        assert digest == sha256(body)
        return digest

    def image(self, repository: str, tag: str | None, seed: str, platform: tuple[str, str] = ("linux", "amd64")) -> str:
        """Push a one-layer image (content from `seed`) and tag it; its manifest digest."""
        os_name, architecture = platform
        layer = self.blob(repository, f"layer {seed}".encode())
        config_bytes = json.dumps(
            {"architecture": architecture, "os": os_name, "rootfs": {"type": "layers", "diff_ids": [layer]}}
        ).encode()
        config = self.blob(repository, config_bytes)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config, "size": len(config_bytes)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": len(f"layer {seed}".encode())}],
            }
        ).encode()
        return self.manifest(repository, tag or sha256(manifest), manifest, OCI_MANIFEST)

    def index(self, repository: str, tag: str, seed: str, media_type: str = OCI_INDEX) -> tuple[str, list[str]]:
        """Push an amd64 and an arm64 image and an index of both under `tag`; the index's and the images' digests."""
        platforms = [("linux", "amd64"), ("linux", "arm64")]
        children = [self.image(repository, None, f"{seed}-{arch}", (os_name, arch)) for os_name, arch in platforms]
        sizes = []
        for child in children:
            got = self.session.get(
                f"{self.registry.url}/v2/{repository}/manifests/{child}",
                headers={**self._auth(repository), "Accept": OCI_MANIFEST},
                timeout=10,
            )
            sizes.append(len(got.content))
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": child,
                        "size": size,
                        "platform": {"os": os_name, "architecture": arch},
                    }
                    for child, size, (os_name, arch) in zip(children, sizes, platforms, strict=True)
                ],
            }
        ).encode()
        return self.manifest(repository, tag, index, media_type), children


# --- a scripted server: what real registries rarely do on demand ------------------------------------


@dataclass(frozen=True)
class Scripted:
    """One canned answer; `writer`, when set, writes the whole answer itself (status line included), for
    what no well-behaved server sends: a body cut short, headers trickled forever, an endless body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    writer: Callable[[BufferedIOBase], None] | None = None


# --- hostile answers (the red team's lab, /tmp/rt-prepush-lab evil.py and chunk.py, as writers) ----------


def truncated_chunked(out: BufferedIOBase) -> None:
    """A chunked 404 whose first chunk promises 5 bytes, sends 2, and the connection closes."""
    out.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")


def trickled_headers(out: BufferedIOBase, every: float = 0.2, at_most: float = 120.0) -> None:
    """Slow loris: a status line, then one header line every `every` seconds, never the end of the headers."""
    out.write(b"HTTP/1.1 200 OK\r\n")
    out.flush()
    ends = time.monotonic() + at_most
    with contextlib.suppress(OSError):
        while time.monotonic() < ends:
            time.sleep(every)
            out.write(b"X-A: b\r\n")
            out.flush()


def endless_body(out: BufferedIOBase, at_most: int = 64 * 1024 * 1024) -> None:
    """A chunked JSON 404 whose body does not end (until the client leaves, or `at_most` bytes)."""
    out.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * (1 << 20)
    with contextlib.suppress(OSError):
        for _ in range(at_most // len(chunk)):
            out.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


@dataclass
class ScriptedServer:
    """A plain-HTTP loopback server answering each `(method, path)` from a queue of canned answers (the last
    one repeats), recording every request: 429s before an answer, a web page where a registry should be, a
    registry that leaves headers out or answers NAME_UNKNOWN."""

    url: str
    host: str
    script: dict[tuple[str, str], list[Scripted]]
    seen: list[tuple[str, str]] = field(default_factory=list)
    # The Authorization header of each request in `seen` (None: none sent).
    authorizations: list[str | None] = field(default_factory=list)
    # Every header of each request in `seen`.
    request_headers: list[dict[str, str]] = field(default_factory=list)


REGISTRY_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"}


@contextlib.contextmanager
def run_scripted_server(
    script: dict[tuple[str, str], list[Scripted]], ca: LoopbackCa | None = None
) -> Iterator[ScriptedServer]:
    """Serve `script` on a free loopback port until the block ends: plain HTTP, or TLS with `ca`'s certificate."""
    port = free_port()
    scheme = "https" if ca is not None else "http"
    server = ScriptedServer(f"{scheme}://127.0.0.1:{port}", f"127.0.0.1:{port}", script)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            path = urlsplit(self.path).path
            server.seen.append((method, path))
            server.authorizations.append(self.headers.get("Authorization"))
            server.request_headers.append(dict(self.headers.items()))
            queue = server.script.get((method, path)) or [
                Scripted(404, REGISTRY_HEADERS, b'{"errors":[{"code":"NOT_FOUND"}]}')
            ]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if answer.writer is not None:
                answer.writer(self.wfile)
                self.close_connection = True
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(answer.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.cert_file, ca.key_file)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with _serving(httpd):
        yield server


@contextlib.contextmanager
def run_closing_server() -> Iterator[str]:
    """A loopback port that accepts connections and closes them at once (a TLS handshake cut short); its
    `host:port`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()
