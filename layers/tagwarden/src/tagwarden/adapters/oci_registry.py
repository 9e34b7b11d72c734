"""Where a tag points, asked of any OCI distribution registry over its HTTP API (`requests`).

The protocol, as the distribution spec and Docker's token auth spec describe it:
- `GET /v2/` answers 200 (anonymous) or 401 with a `WWW-Authenticate` challenge: `Basic realm=...`, or
  `Bearer realm="<token endpoint>",service="<service>"`; a registry says so in its
  `Docker-Distribution-API-Version: registry/2.0` header.
- A bearer token comes from the realm (`GET realm?service=...&scope=repository:<name>:pull`, with basic
  credentials or anonymously), in the JSON answer's `token` (or, OAuth2-style, `access_token`).
- `HEAD /v2/<name>/manifests/<tag>` with the manifest media types accepted answers the digest in
  `Docker-Content-Digest`; a 404 has no body on HEAD, so a GET reads its error code: `MANIFEST_UNKNOWN`
  (no such tag) or `NAME_UNKNOWN` (no such repository).

429 and 5xx answers and connection failures are retried with exponential backoff (`Retry-After` honoured,
capped); everything else that is not an answer becomes one of the port's errors, with a message naming
what came back, so the command prints one line and never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from tagwarden.clock import utcnow
from tagwarden.domain.images import InvalidReferenceError, validate_digest
from tagwarden.domain.prepush import TagLookup
from tagwarden.domain.tags import TagRef
from tagwarden.ports import NotARegistryError, RegistryError, RegistryRefusedError, RegistryUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

# What a multi-platform push leaves under a tag: an index (OCI or Docker manifest list) or one manifest.
# Schema 1 is not asked for: a registry that still holds one converts or refuses, and no build tool pushes it.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
API_VERSION_HEADER = "Docker-Distribution-API-Version"
USER_AGENT = "tagwarden-prepush"
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
    """How to reach a registry: its base URL and how to verify its certificate."""

    base_url: str  # https://host[:port] (http only on loopback, by the command's --insecure)
    # True: the system's CAs; a path: that CA bundle (--ca-file).
    verify: bool | str = True


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str  # "basic" or "bearer", lower-cased
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The scheme and parameters of a `WWW-Authenticate` header; None when there is none worth reading."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m[1].lower(): m[2] if m[2] else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def is_loopback(host: str) -> bool:
    """Whether a host (with or without a port, IPv6 in brackets) names this machine."""
    name = urlsplit(f"//{host}").hostname or ""
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
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = now if now is not None else utcnow().timestamp()
    return max(0.0, when.timestamp() - reference)


def ecr_login(client: ECRClient, account: str) -> RegistryCredentials:
    """Basic credentials for an account's ECR registry, from `GetAuthorizationToken` (valid 12 hours).

    The token is base64 of `AWS:<password>`, as `aws ecr get-login-password` prints the second half.
    Raises RegistryRefusedError when the caller may not log in, RegistryUnavailableError when ECR fails.
    """
    from botocore.exceptions import ClientError

    try:
        data = client.get_authorization_token(registryIds=[account])["authorizationData"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "ExpiredTokenException"):
            raise RegistryRefusedError(f"ECR GetAuthorizationToken for account {account}: {error}") from None
        raise RegistryUnavailableError(f"ECR GetAuthorizationToken for account {account}: {error}") from None
    token = base64.b64decode(data[0]["authorizationToken"]).decode()
    username, _, password = token.partition(":")
    return RegistryCredentials(username, password, "ECR GetAuthorizationToken")


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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", USER_AGENT)
        self._attempts = attempts
        self._backoff = backoff
        self._max_wait = max_wait
        self._timeout = timeout
        self._sleep = sleep
        self._challenge: Challenge | None = None
        self._pinged = False
        self._authorization: dict[str, str | None] = {}

    @property
    def base_url(self) -> str:
        """The registry's base URL."""
        return self._endpoint.base_url

    def lookup(self, tag: TagRef) -> TagLookup:
        """Where the tag points now: HEAD on its manifest (GET when HEAD has no digest or says 404)."""
        repository = tag.image.repository
        authorization = self._authorize(repository)
        url = f"{self.base_url}/v2/{repository}/manifests/{tag.tag}"
        headers = {"Accept": ACCEPT}
        if authorization is not None:
            headers["Authorization"] = authorization
        response = self._send("HEAD", url, headers=headers)
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if response.status_code == 401 and authorization is None and challenge is not None:
            # Anonymous at /v2/ but not for this repository: authenticate as the repository's challenge asks.
            self._challenge = challenge
            del self._authorization[repository]
            retried = self._authorize(repository)
            if retried is not None:
                headers["Authorization"] = retried
            response = self._send("HEAD", url, headers=headers)
        if response.status_code == 200:
            digest = response.headers.get("Docker-Content-Digest")
            if digest:
                return TagLookup(self._valid_digest(digest, url), True, _media_type(response))
            # A registry may leave the header off HEAD: the digest is then the sha256 of the manifest's bytes.
            return self._digest_from_body(self._send("GET", url, headers=headers), url)
        if response.status_code == 404:
            return self._absent(url, headers)
        raise self._refusal(response, url)

    # --- authorization --------------------------------------------------------------------------------

    def _authorize(self, repository: str) -> str | None:
        """The `Authorization` header for pulling from `repository` (None: anonymous)."""
        if repository in self._authorization:
            return self._authorization[repository]
        if not self._pinged:
            self._ping()
        challenge = self._challenge
        value: str | None
        if challenge is None:
            value = None
        elif challenge.scheme == "basic":
            value = self._basic(required_by=self.base_url)
        elif challenge.scheme == "bearer":
            value = f"Bearer {self._token(challenge, repository)}"
        else:
            raise RegistryRefusedError(f"{self.base_url}/v2/ asks for {challenge.scheme} auth, which is not supported")
        self._authorization[repository] = value
        return value

    def _ping(self) -> None:
        """`GET /v2/`: whether this is a registry, and which authentication it asks for."""
        url = f"{self.base_url}/v2/"
        response = self._send("GET", url)
        if response.status_code == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is None or _is_html(response):
                raise NotARegistryError(f"{url} answered 401 without a registry's auth challenge: {_what(response)}")
            self._challenge = challenge
        elif response.status_code != 200:
            raise NotARegistryError(f"{url} answered {_what(response)}: not an OCI distribution registry")
        if API_VERSION_HEADER not in response.headers and (
            _is_html(response) or (response.status_code == 200 and not _is_json(response))
        ):
            raise NotARegistryError(
                f"{url} answered {_what(response)} without a {API_VERSION_HEADER} header: not an OCI registry"
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
        if not realm or not realm.startswith(("https://", "http://")):
            raise NotARegistryError(f"{self.base_url}/v2/ sent a bearer challenge without a usable realm: {realm!r}")
        if realm.startswith("http://") and not is_loopback(urlsplit(realm).netloc):
            # Credentials never travel in clear text to a token service beyond this machine.
            raise RegistryRefusedError(f"the registry's token service {realm} is not https: refusing to use it")
        params = {"scope": f"repository:{repository}:pull"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {}
        if self._credentials is not None:
            headers["Authorization"] = self._basic(required_by=realm)
        response = self._send("GET", realm, headers=headers, params=params)
        if response.status_code in (401, 403):
            who = f"the {self._credentials.source}" if self._credentials else "anonymous access"
            raise RegistryRefusedError(
                f"the token service {realm} refused {who} (HTTP {response.status_code}){_error_detail(response)}"
            )
        if response.status_code != 200 or not _is_json(response):
            raise NotARegistryError(f"the token service {realm} answered {_what(response)}, not a token")
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise NotARegistryError(f"the token service {realm} answered JSON without a token or access_token")
        return token

    # --- answers --------------------------------------------------------------------------------------

    def _digest_from_body(self, response: requests.Response, url: str) -> TagLookup:
        """The tag's digest from a GET of its manifest: the registry's header, else the sha256 of the bytes."""
        if response.status_code != 200:
            raise self._refusal(response, url)
        media_type = _media_type(response)
        if media_type not in MANIFEST_MEDIA_TYPES and not _is_json(response):
            raise NotARegistryError(f"{url} answered {_what(response)}, not a manifest")
        declared = response.headers.get("Docker-Content-Digest")
        digest = declared or f"sha256:{hashlib.sha256(response.content).hexdigest()}"
        return TagLookup(self._valid_digest(digest, url), True, media_type)

    def _absent(self, url: str, headers: dict[str, str]) -> TagLookup:
        """A 404 on HEAD: GET tells a missing tag (MANIFEST_UNKNOWN) from a missing repository (NAME_UNKNOWN)."""
        response = self._send("GET", url, headers=headers)
        if response.status_code == 200:  # pushed between the two requests
            return self._digest_from_body(response, url)
        if response.status_code != 404:
            raise self._refusal(response, url)
        if _is_html(response):
            raise NotARegistryError(f"{url} answered {_what(response)}: not an OCI distribution registry")
        codes = _error_codes(response)
        return TagLookup(None, repository_exists="NAME_UNKNOWN" not in codes)

    def _refusal(self, response: requests.Response, url: str) -> RegistryError:
        """The error for an answer that is neither a manifest nor a 404."""
        status = response.status_code
        if status == 401:
            if self._credentials is None:
                return RegistryRefusedError(
                    f"{url}: authentication required (HTTP 401){_error_detail(response)}: pass --username and "
                    "--password-stdin"
                )
            return RegistryRefusedError(
                f"{url}: the registry rejected the {self._credentials.source} for user "
                f"{self._credentials.username!r} (HTTP 401){_error_detail(response)}"
            )
        if status == 403:
            return RegistryRefusedError(f"{url}: access denied (HTTP 403){_error_detail(response)}")
        return NotARegistryError(f"{url} answered {_what(response)}: not what a registry answers")

    def _valid_digest(self, digest: str, url: str) -> str:
        try:
            return validate_digest(digest.strip())
        except InvalidReferenceError:
            raise NotARegistryError(f"{url} answered a malformed digest {digest[:80]!r}") from None

    # --- transport ------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request, retried on connection failures, 429 and 5xx with exponential backoff."""
        failure = ""
        for attempt in range(self._attempts):
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    params=dict(params or {}),
                    timeout=self._timeout,
                    verify=self._endpoint.verify,
                    allow_redirects=True,
                )
            except requests.exceptions.SSLError as error:
                # Not transient: the certificate does not verify against the CAs in use.
                raise RegistryRefusedError(
                    f"TLS to {url} failed ({_root_cause(error)}): pass --ca-file with the registry's CA"
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                failure = f"{type(error).__name__}: {_root_cause(error)}"
                wait = None
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                failure = f"HTTP {response.status_code}{_error_detail(response)}"
                wait = retry_after(response.headers.get("Retry-After"))
            if attempt + 1 < self._attempts:
                self._sleep(min(self._max_wait, wait if wait is not None else self._backoff * 2**attempt))
        raise RegistryUnavailableError(f"{method} {url}: {failure} (after {self._attempts} attempts)")


def _media_type(response: requests.Response) -> str | None:
    value = response.headers.get("Content-Type")
    return value.split(";")[0].strip() if value else None


def _is_html(response: requests.Response) -> bool:
    content_type = (response.headers.get("Content-Type") or "").lower()
    head = response.content[:256].lstrip().lower() if response.content else b""
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def _is_json(response: requests.Response) -> bool:
    return "json" in (response.headers.get("Content-Type") or "").lower()


def _what(response: requests.Response) -> str:
    """`HTTP 404 (text/html)`: how a response is named in messages."""
    content_type = _media_type(response) or "no content type"
    return f"HTTP {response.status_code} ({content_type})"


def _error_codes(response: requests.Response) -> list[str]:
    """The `errors[].code` of a registry's error body (empty when there is none)."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]


def _error_detail(response: requests.Response) -> str:
    """`: UNAUTHORIZED authentication required` from a registry's error body, or nothing."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    return f": {first.get('code', '')} {str(first.get('message', ''))[:200]}".rstrip()


def _root_cause(error: BaseException) -> str:
    """The innermost cause's message (urllib3 wraps the socket error that says what happened)."""
    current: BaseException = error
    while current.__cause__ is not None or (current.args and isinstance(current.args[0], BaseException)):
        nested = current.__cause__ or current.args[0]
        assert isinstance(nested, BaseException)
        current = nested
    text = str(current)
    # urllib3 puts the connection object's repr first: keep the part that says what went wrong.
    return text.split(">: ", 1)[-1][:300]
