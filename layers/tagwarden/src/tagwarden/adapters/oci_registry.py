"""Where a tag points, asked of any OCI distribution registry over its HTTP API (`requests`).

The protocol, as the distribution spec and Docker's token auth spec describe it:
- `GET /v2/` answers 200 (anonymous) or 401 with a `WWW-Authenticate` challenge: `Basic realm=...`, or
  `Bearer realm="<token endpoint>",service="<service>"`; a registry says so in its
  `Docker-Distribution-API-Version: registry/2.0` header, which docker itself relies on to recognise the
  v2 API (distribution sets it on every answer; ECR sends it; Harbor added it to its 401s in 2.0,
  goharbor/harbor#10868). A 200 on /v2/ without it is not taken for a registry.
- A bearer token comes from the realm (`GET realm?service=...&scope=repository:<name>:pull`, with basic
  credentials or anonymously), in the JSON answer's `token` (or, OAuth2-style, `access_token`).
- `HEAD /v2/<name>/manifests/<tag>` with the manifest media types accepted answers the digest in
  `Docker-Content-Digest`; a 404 has no body on HEAD, so a GET reads its error code: `MANIFEST_UNKNOWN`
  (no such tag; distribution says it for an unknown repository too, and docker prints its message,
  "manifest unknown", for Docker Hub, GHCR and Quay alike), `NAME_UNKNOWN` (no such repository: ECR),
  `NOT_FOUND` (Harbor's own error body, goharbor/harbor#18461, buildpacks/lifecycle#304). A 404 without
  one of those codes is not read as "absent": a proxy's or a web server's 404 would otherwise let any push
  through (fail closed).

Every check runs under one wall-clock deadline (`deadline` seconds, from the start of a lookup):
a watchdog shuts the sockets down when it passes, so a server trickling headers or an endless body cannot
hold CI; bodies are read streamed and capped at 4 MiB (the distribution spec's manifest size limit).
429 and 5xx answers, connection failures, a body cut short and a TLS handshake cut short are retried with
exponential backoff (`Retry-After` honoured, capped, never past the deadline); redirects are followed by
hand (at most 5, never from https to plain http beyond loopback, `Authorization` dropped when the origin
changes). Everything else that is not an answer becomes one of the port's errors, with a message naming
what came back, so the command prints one line and never a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tagwarden.clock import utcnow
from tagwarden.domain.images import InvalidReferenceError, validate_digest
from tagwarden.domain.prepush import TagLookup
from tagwarden.domain.tags import TagRef
from tagwarden.ports import NotARegistryError, RegistryError, RegistryRefusedError, RegistryUnavailableError

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

# What a multi-platform push leaves under a tag: an index (OCI or Docker manifest list) or one manifest,
# first. Then what older or stranger tags hold (schema 1, OCI artifact manifests), and anything at a low
# weight: a strict registry answers 404 (MANIFEST_UNKNOWN) for a manifest whose type the client does not
# accept, and that must never read as "no such tag".
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.oci.artifact.manifest.v1+json",
)
ACCEPT = ", ".join((*MANIFEST_MEDIA_TYPES, "*/*;q=0.1"))
API_VERSION_HEADER = "Docker-Distribution-API-Version"
USER_AGENT = "tagwarden-prepush"
# The error codes that prove a 404 comes from a registry that looked for the manifest (see the docstring).
ABSENT_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "NOT_FOUND"})
DEFAULT_DEADLINE = 60.0  # seconds per check, all requests, retries and waits included
MAX_BODY = 4 * 1024 * 1024  # the distribution spec's manifest limit; error bodies are far smaller
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The parameters of a `WWW-Authenticate` challenge: key="quoted value" or key=token.
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """A user name and password (or token) for basic auth and the token endpoint."""

    username: str
    password: str = field(repr=False)
    # Where they came from, for messages: `--username`, the environment, docker's config, ECR.
    source: str = "credentials"


@dataclass(frozen=True, slots=True)
class RegistryEndpoint:
    """How to reach a registry: its base URL and the private CA to trust beside the default ones."""

    base_url: str  # https://host[:port] (http only on loopback, by the command's --insecure)
    ca_file: str | None = None  # --ca-file: added to the default trust, never replacing it


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str  # "basic" or "bearer", lower-cased
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, its body read in full (capped): what the protocol logic reads."""

    status_code: int
    headers: CaseInsensitiveDict[str]
    content: bytes


@functools.cache
def tls_context(ca_file: str | None = None, bundle: str | None = None) -> ssl.SSLContext:
    """The certificates a registry's TLS is verified against: the system's CAs (OpenSSL's default paths,
    `SSL_CERT_FILE`/`SSL_CERT_DIR`), or certifi's Mozilla bundle when the system has none loaded (a bare
    container); `bundle` (REQUESTS_CA_BUNDLE) and `ca_file` when given, added to those, never instead.

    Built once per process and arguments: parsing the system's bundle costs tens of milliseconds, and a
    context is safe to share between connections. Raises RegistryRefusedError for a file that is not PEM.
    """
    context = ssl.create_default_context()
    if context.cert_store_stats()["x509_ca"] == 0:
        import certifi

        context.load_verify_locations(certifi.where())
    system = ssl.get_default_verify_paths().cafile
    for path in (bundle, ca_file):
        if path is None or path == system:
            continue
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as error:
            raise RegistryRefusedError(f"CA certificates {path}: {error}") from None
    return context


def usable_url(text: str | None) -> SplitResult | None:
    """`text` split, when it is an http(s) URL with a host, a valid port and no user info; else None."""
    if not text:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port beyond 65535 or not a number
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username is not None:
        return None
    return parts


def parse_challenge(header: str) -> Challenge | None:
    """The scheme and parameters of a `WWW-Authenticate` header; None when there is none worth reading."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m[1].lower(): m[2] if m[2] else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def is_loopback(host: str) -> bool:
    """Whether a host (with or without a port, IPv6 in brackets) names this machine."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:  # an unclosed IPv6 bracket
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None when unreadable."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes '²', which float() refuses.
    if re.fullmatch(r"[0-9]{1,12}", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = now if now is not None else utcnow().timestamp()
    return max(0.0, when.timestamp() - reference)


class _RetryableError(Exception):
    """A failure worth another attempt (connection refused or cut, a body cut short, a TLS handshake cut)."""


class _GuardedAdapter(HTTPAdapter):
    """`requests`' adapter with Tagwarden's trust and a way to cut every open connection at the deadline.

    Trust: `requests` would verify against certifi alone (or `--ca-file` alone: `verify=path` replaces the
    bundle); here every HTTPS pool gets `tls_context` (the system's CAs plus `REQUESTS_CA_BUNDLE` plus
    `--ca-file`). Connections register
    themselves when they connect, so that `abort` can shut their sockets down from the watchdog thread,
    which ends a blocked read at once.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._open: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pool_classes()
        return manager

    def _pool_classes(self) -> dict[str, type[HTTPConnectionPool]]:
        opened = self._open

        class Connection(HTTPConnection):
            def connect(self) -> None:
                opened.add(self)
                super().connect()

        class TlsConnection(HTTPSConnection):
            def connect(self) -> None:
                opened.add(self)
                super().connect()

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class TlsPool(HTTPSConnectionPool):
            ConnectionCls = TlsConnection

        return {"http": Pool, "https": TlsPool}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: str | tuple[str, str] | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        # The context already holds any bundle `verify` names (REQUESTS_CA_BUNDLE): see OciRegistry.
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        pool["ssl_context"] = self._context
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # The context holds the trust; `requests` would load certifi's bundle into it again per connection.
        if url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None

    def abort(self) -> None:
        """Shut down every socket this adapter opened: a read blocked on one of them ends now."""
        for connection in list(self._open):
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


class OciRegistry:
    """A `TagResolver` for one registry, over its distribution API.

    One instance per registry and run: the authorization it earns (a bearer token per repository) is
    kept for the next lookup. `session` is injectable so that benchmarks count requests with a hook.
    """

    def __init__(
        self,
        endpoint: RegistryEndpoint,
        credentials: RegistryCredentials | None = None,
        session: requests.Session | None = None,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = MAX_BODY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", USER_AGENT)
        # What `requests` would take from the environment instead of its own bundle is added to the trust.
        bundle = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
            if self._session.trust_env
            else None
        )
        self._adapter = _GuardedAdapter(tls_context(endpoint.ca_file, bundle))
        self._session.mount("https://", self._adapter)
        self._session.mount("http://", self._adapter)
        self._attempts = attempts
        self._backoff = backoff
        self._max_wait = max_wait
        self._timeout = timeout
        self._deadline = deadline
        self._max_body = max_body
        self._sleep = sleep
        self._ends_at = time.monotonic() + deadline
        self._challenge: Challenge | None = None
        self._pinged = False
        self._authorization: dict[str, str | None] = {}

    @property
    def base_url(self) -> str:
        """The registry's base URL."""
        return self._endpoint.base_url

    def lookup(self, tag: TagRef) -> TagLookup:
        """Where the tag points now: HEAD on its manifest (GET when HEAD has no digest or says 404).

        The whole lookup (ping, token, HEAD, GET, retries) ends within the deadline.
        """
        self._ends_at = time.monotonic() + self._deadline
        repository = tag.image.repository
        authorization = self._authorize(repository)
        url = f"{self.base_url}/v2/{repository}/manifests/{tag.tag}"
        headers = {"Accept": ACCEPT}
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = self._send("HEAD", url, headers=headers)
        challenge = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
        if answer.status_code == 401 and authorization is None and challenge is not None:
            # Anonymous at /v2/ but not for this repository: authenticate as the repository's challenge asks.
            self._challenge = challenge
            headers["Authorization"] = self._authorization[repository] = self._answer_challenge(challenge, repository)
            answer = self._send("HEAD", url, headers=headers)
        # Anonymous answers are marked: a registry hiding private repositories answers them 404 too.
        return dataclasses.replace(self._resolve(answer, url, headers), anonymous="Authorization" not in headers)

    def _resolve(self, answer: Answer, url: str, headers: dict[str, str]) -> TagLookup:
        """Where the tag points, from the answer to HEAD on its manifest."""
        if answer.status_code == 200:
            digest = answer.headers.get("Docker-Content-Digest")
            if digest:
                return TagLookup(self._valid_digest(digest, url), True, _media_type(answer))
            # A registry may leave the header off HEAD: the digest is then the sha256 of the manifest's bytes.
            return self._digest_from_body(self._send("GET", url, headers=headers), url)
        if answer.status_code == 404:
            return self._absent(url, headers)
        raise self._refusal(answer, url)

    # --- authorization --------------------------------------------------------------------------------

    def _authorize(self, repository: str) -> str | None:
        """The `Authorization` header for pulling from `repository` (None: anonymous)."""
        if repository in self._authorization:
            return self._authorization[repository]
        if not self._pinged:
            self._ping()
        challenge = self._challenge
        value = None if challenge is None else self._answer_challenge(challenge, repository)
        self._authorization[repository] = value
        return value

    def _answer_challenge(self, challenge: Challenge, repository: str) -> str:
        """The `Authorization` header a challenge asks for."""
        if challenge.scheme == "basic":
            return self._basic(required_by=self.base_url)
        if challenge.scheme == "bearer":
            return f"Bearer {self._token(challenge, repository)}"
        raise RegistryRefusedError(f"{self.base_url}/v2/ asks for {challenge.scheme} auth, which is not supported")

    def _ping(self) -> None:
        """`GET /v2/`: whether this is a registry, and which authentication it asks for."""
        url = f"{self.base_url}/v2/"
        answer = self._send("GET", url)
        if answer.status_code == 401:
            challenge = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
            if challenge is None or _is_html(answer):
                raise NotARegistryError(f"{url} answered 401 without a registry's auth challenge: {_what(answer)}")
            self._challenge = challenge
        elif answer.status_code != 200:
            raise NotARegistryError(f"{url} answered {_what(answer)}: not an OCI distribution registry")
        elif API_VERSION_HEADER not in answer.headers:
            # Every registry sends it (the spec's version check); a web app answering 200 everywhere does not.
            raise NotARegistryError(
                f"{url} answered {_what(answer)} without a {API_VERSION_HEADER} header: not an OCI registry"
            )
        self._pinged = True

    def _basic(self, required_by: str) -> str:
        credentials = self._credentials
        if credentials is None:
            raise RegistryRefusedError(
                f"{required_by} requires authentication: pass --username and --password-stdin (or set "
                "TAGWARDEN_REGISTRY_USERNAME and TAGWARDEN_REGISTRY_PASSWORD, or docker login)"
            )
        pair = f"{credentials.username}:{credentials.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    def _token(self, challenge: Challenge, repository: str) -> str:
        """A bearer token for pulling from `repository`, from the challenge's realm."""
        realm = challenge.params.get("realm")
        parts = usable_url(realm)
        if realm is None or parts is None:
            raise NotARegistryError(
                f"{self.base_url}/v2/ sent a bearer challenge without a usable realm: {(realm or '')[:200]!r}"
            )
        # Credentials never travel in clear text: a plain-http token service only beside a plain-http
        # registry on this machine (a test or a port-forward), never for an https registry.
        if parts.scheme == "http" and not (self.base_url.startswith("http://") and is_loopback(parts.netloc)):
            raise RegistryRefusedError(
                f"the registry's token service {realm} is not https: refusing to use it (plain http only "
                "for a plain-http registry on this machine)"
            )
        params = {"scope": f"repository:{repository}:pull"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {}
        if self._credentials is not None:
            headers["Authorization"] = self._basic(required_by=realm)
        answer = self._send("GET", realm, headers=headers, params=params)
        if answer.status_code in (401, 403):
            who = f"the {self._credentials.source}" if self._credentials else "anonymous access"
            raise RegistryRefusedError(
                f"the token service {realm} refused {who} (HTTP {answer.status_code}){_error_detail(answer)}"
            )
        if answer.status_code != 200 or not _is_json(answer):
            raise NotARegistryError(f"the token service {realm} answered {_what(answer)}, not a token")
        body = _json(answer.content)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise NotARegistryError(f"the token service {realm} answered JSON without a token or access_token")
        return token

    # --- answers --------------------------------------------------------------------------------------

    def _digest_from_body(self, answer: Answer, url: str) -> TagLookup:
        """The tag's digest from a GET of its manifest: the registry's header, else the sha256 of the bytes."""
        if answer.status_code != 200:
            raise self._refusal(answer, url)
        media_type = _media_type(answer)
        if media_type not in MANIFEST_MEDIA_TYPES and not _is_json(answer):
            raise NotARegistryError(f"{url} answered {_what(answer)}, not a manifest")
        declared = answer.headers.get("Docker-Content-Digest")
        digest = declared or f"sha256:{hashlib.sha256(answer.content).hexdigest()}"
        return TagLookup(self._valid_digest(digest, url), True, media_type)

    def _absent(self, url: str, headers: dict[str, str]) -> TagLookup:
        """A 404 on HEAD: absent only when a GET's error body proves a registry looked (ABSENT_CODES).

        `repository_exists` is False only on NAME_UNKNOWN (ECR says it for a repository that does not
        exist); distribution says MANIFEST_UNKNOWN for a missing tag and a missing repository alike, so it
        stays None (not known) there.
        """
        answer = self._send("GET", url, headers=headers)
        if answer.status_code == 200:  # pushed between the two requests
            return self._digest_from_body(answer, url)
        if answer.status_code != 404:
            raise self._refusal(answer, url)
        codes = {str(error.get("code")) for error in _registry_errors(answer)}
        if not codes & ABSENT_CODES:
            raise NotARegistryError(
                f"{url} answered {_what(answer)} without a registry's error code ({', '.join(sorted(ABSENT_CODES))})"
                ": not read as an absent tag (a proxy or web server in front of the registry?)"
            )
        return TagLookup(None, repository_exists=False if "NAME_UNKNOWN" in codes else None)

    def _refusal(self, answer: Answer, url: str) -> RegistryError:
        """The error for an answer that is neither a manifest nor a 404."""
        status = answer.status_code
        if status == 401:
            if self._credentials is None:
                return RegistryRefusedError(
                    f"{url}: authentication required (HTTP 401){_error_detail(answer)}: pass --username and "
                    "--password-stdin"
                )
            return RegistryRefusedError(
                f"{url}: the registry rejected the {self._credentials.source} for user "
                f"{self._credentials.username!r} (HTTP 401){_error_detail(answer)}"
            )
        if status == 403:
            return RegistryRefusedError(f"{url}: access denied (HTTP 403){_error_detail(answer)}")
        if status in REDIRECT_STATUSES:
            return NotARegistryError(f"{url} answered a redirect ({_what(answer)}) without a Location")
        return NotARegistryError(f"{url} answered {_what(answer)}: not what a registry answers")

    def _valid_digest(self, digest: str, url: str) -> str:
        try:
            return validate_digest(digest.strip())
        except InvalidReferenceError:
            raise NotARegistryError(f"{url} answered a malformed digest {digest[:80]!r}") from None

    # --- transport ------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._ends_at - time.monotonic()

    def _past_deadline(self, method: str, url: str, why: str) -> RegistryUnavailableError:
        return RegistryUnavailableError(f"{method} {url}: {why} within the {self._deadline:g} s deadline (--timeout)")

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request (redirects followed), retried on 429, 5xx and transient failures with backoff."""
        failure = ""
        for attempt in range(self._attempts):
            wait: float | None = None
            try:
                answer = self._follow(method, url, dict(headers or {}), params)
            except _RetryableError as error:
                failure = str(error)
            else:
                if answer.status_code != 429 and answer.status_code < 500:
                    return answer
                failure = f"HTTP {answer.status_code}{_error_detail(answer)}"
                wait = retry_after(answer.headers.get("Retry-After"))
            if attempt + 1 < self._attempts:
                if wait is not None and wait > self._remaining():
                    raise self._past_deadline(method, url, f"{failure}, Retry-After {wait:.0f} s: no answer")
                pause = min(self._max_wait, wait if wait is not None else self._backoff * 2**attempt)
                if pause >= self._remaining():
                    raise self._past_deadline(method, url, f"{failure}: no answer")
                self._sleep(pause)
        raise RegistryUnavailableError(f"{method} {url}: {failure} (after {self._attempts} attempts)")

    def _follow(self, method: str, url: str, headers: dict[str, str], params: Mapping[str, str] | None) -> Answer:
        """The request, following at most MAX_REDIRECTS redirects that keep the registry's guarantees."""
        first = url
        origin = _origin(urlsplit(url))
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._exchange(method, url, headers, params)
            location = answer.headers.get("Location")
            if answer.status_code not in REDIRECT_STATUSES or not location:
                return answer
            target = usable_url(urljoin(url, location.strip()))
            if target is None:
                raise NotARegistryError(f"{url} redirects to {location[:200]!r}, not an http(s) URL")
            if url.startswith("https://") and target.scheme == "http" and not is_loopback(target.netloc):
                raise RegistryRefusedError(
                    f"{url} redirects from https to plain http ({target.geturl()[:200]}): refused"
                )
            if _origin(target) != origin:
                # Credentials stay with the origin they were given for (requests does the same).
                headers.pop("Authorization", None)
            url, params = target.geturl(), None
        raise NotARegistryError(f"{first}: more than {MAX_REDIRECTS} redirects")

    def _exchange(self, method: str, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None) -> Answer:
        """One HTTP exchange, its body read in full, under the watchdog of the check's deadline."""
        remaining = self._remaining()
        if remaining <= 0:
            raise self._past_deadline(method, url, "no answer")
        connect, read = self._timeout
        watchdog = threading.Timer(remaining, self._adapter.abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            response = self._session.request(
                method,
                url,
                headers=dict(headers),
                params=dict(params or {}),
                timeout=(min(connect, remaining), min(read, remaining)),
                allow_redirects=False,
                stream=True,
            )
            try:
                # Read to the end, the connection goes back to the pool for the next request of the check.
                body = self._read_body(response, method, url)
            except BaseException:
                response.close()  # a body left unread (cut, too large): never reuse that connection
                raise
            return Answer(response.status_code, response.headers, body)
        except requests.RequestException as error:
            if self._remaining() <= 0:
                raise self._past_deadline(method, url, "no complete answer") from None
            raise self._transport_error(error, method, url) from None
        finally:
            watchdog.cancel()

    def _read_body(self, response: requests.Response, method: str, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                raise RegistryUnavailableError(
                    f"{method} {url}: the answer's body goes past {self._max_body // (1024 * 1024)} MiB, "
                    "more than any manifest or error a registry sends"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _transport_error(self, error: requests.RequestException, method: str, url: str) -> Exception:
        """What a `requests` exception means: worth a retry (`_RetryableError`), or one of the port's errors."""
        cause = _root_cause(error)
        if isinstance(error, requests.exceptions.SSLError):
            return self._tls_error(error, url, cause)
        if isinstance(error, requests.exceptions.ContentDecodingError):
            return NotARegistryError(f"{url} answered a body that does not decode as its Content-Encoding says")
        if isinstance(
            error,
            requests.exceptions.ConnectionError
            | requests.exceptions.Timeout
            | requests.exceptions.ChunkedEncodingError,
        ):
            return _RetryableError(f"{type(error).__name__}: {cause}")
        # InvalidURL, InvalidSchema, InvalidHeader...: the registry's answer or URL cannot be used.
        return NotARegistryError(f"{method} {url}: {type(error).__name__}: {cause}")

    def _tls_error(self, error: requests.exceptions.SSLError, url: str, cause: str) -> Exception:
        """Only a certificate that does not verify says "certificate"; a cut handshake is retried."""
        chain = list(_causes(error))
        if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain):
            return RegistryRefusedError(
                f"TLS to {url}: the certificate does not verify ({cause}): for a private CA pass --ca-file"
            )
        if "WRONG_VERSION_NUMBER" in cause or "record layer failure" in cause:
            return RegistryRefusedError(
                f"TLS to {url} failed ({cause}): the port answers plain HTTP; for a registry on this machine "
                "pass --insecure (or --registry-url http://...)"
            )
        if any(isinstance(c, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionResetError) for c in chain) or (
            "EOF" in cause
        ):
            return _RetryableError(f"TLS handshake cut short: {cause}")
        return RegistryRefusedError(f"TLS to {url} failed: {cause}")


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """Scheme, host and port: what credentials are bound to."""
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _media_type(answer: Answer) -> str | None:
    value = answer.headers.get("Content-Type")
    return value.split(";")[0].strip() if value else None


def _is_html(answer: Answer) -> bool:
    content_type = (answer.headers.get("Content-Type") or "").lower()
    head = answer.content[:256].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def _is_json(answer: Answer) -> bool:
    return "json" in (answer.headers.get("Content-Type") or "").lower()


def _what(answer: Answer) -> str:
    """`HTTP 404 (text/html)`: how an answer is named in messages."""
    content_type = _media_type(answer) or "no content type"
    return f"HTTP {answer.status_code} ({content_type})"


def _json(content: bytes) -> object:
    """The JSON in a body; None when there is none (or it nests deeper than Python's recursion allows)."""
    try:
        return json.loads(content or b"null")
    except (ValueError, RecursionError):
        return None


def _registry_errors(answer: Answer) -> list[dict[str, Any]]:
    """The `errors` of a registry's error body (`{"errors": [{"code", "message"}]}`); empty when none."""
    body = _json(answer.content)
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [error for error in errors if isinstance(error, dict) and error.get("code")]


def _error_detail(answer: Answer) -> str:
    """`: UNAUTHORIZED authentication required` from a registry's error body, or nothing."""
    errors = _registry_errors(answer)
    if not errors:
        return ""
    first = errors[0]
    return f": {first.get('code', '')} {str(first.get('message', ''))[:200]}".rstrip()


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the ones inside it (`__cause__`, or an exception as the first argument: urllib3's way)."""
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nested = current.__cause__ or current.__context__
        if nested is None and current.args and isinstance(current.args[0], BaseException):
            nested = current.args[0]
        if nested is None and isinstance(getattr(current, "reason", None), BaseException):
            nested = current.reason  # type: ignore[attr-defined]
        current = nested


def _root_cause(error: BaseException) -> str:
    """The innermost cause's message (urllib3 wraps the socket error that says what happened)."""
    *_, innermost = _causes(error)
    text = str(innermost)
    # urllib3 puts the connection object's repr first: keep the part that says what went wrong.
    return text.split(">: ", 1)[-1][:300]
