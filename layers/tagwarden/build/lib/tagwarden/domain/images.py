"""Image names, tags and digests, parsed per the OCI distribution reference grammar.

Everything that ends up in a ledger key passes through these validators first, so a name can never
smuggle a key separator (`#`, `|`, `@`, `:`) into the ledger.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_LEGACY_DEFAULT_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(
    r"(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)"
    r"|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
_ECR_HOST_RE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
)
MAX_REFERENCE_LENGTH = 4096


class InvalidReferenceError(ValueError):
    """An image name, tag, digest or reference that the distribution grammar does not allow."""


def validate_digest(value: str) -> str:
    """Return the digest if it is a well-formed sha256/sha512 content digest, else raise."""
    if not _DIGEST_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a content digest (sha256:<64 hex> or sha512:<128 hex>): {value[:80]!r}")
    return value


def validate_tag(value: str) -> str:
    """Return the tag if it is a valid image tag (up to 128 of [A-Za-z0-9_.-], not starting with . or -)."""
    if not _TAG_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a valid image tag: {value[:80]!r}")
    return value


def validate_repository(value: str) -> str:
    """Return the repository path if it is valid (lower-case components separated by `/`), else raise."""
    if len(value) > 256 or not _REPOSITORY_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a valid repository name: {value[:80]!r}")
    return value


def validate_registry(value: str) -> str:
    """Return the registry host (with optional port) if valid, else raise."""
    if len(value) > 255 or not _DOMAIN_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a valid registry host: {value[:80]!r}")
    return value.lower()


def ecr_registry(account: str, region: str) -> str:
    """The registry host of an account's private ECR registry in a region."""
    if not re.fullmatch(r"[0-9]{12}", account) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", region):
        raise InvalidReferenceError(f"not an AWS account and region: {account[:20]!r} {region[:30]!r}")
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"{account}.dkr.ecr.{region}{suffix}"


def is_ecr_registry(registry: str) -> bool:
    """True for any account's and region's private ECR registry host."""
    return _ECR_HOST_RE.fullmatch(registry) is not None


def canonical_registry(registry: str) -> str:
    """ECR's FIPS endpoint serves the same registry as its standard host, which the ledger's keys use."""
    return registry.replace(".dkr.ecr-fips.", ".dkr.ecr.", 1) if is_ecr_registry(registry) else registry


def ecr_host_parts(registry: str) -> tuple[str | None, str | None]:
    """Account and region of an ECR registry host; (None, None) for other registries."""
    match = _ECR_HOST_RE.fullmatch(registry)
    return (match["account"], match["region"]) if match else (None, None)


@dataclass(frozen=True, slots=True)
class ImageName:
    """A repository in a registry, e.g. `111122223333.dkr.ecr.eu-west-1.amazonaws.com` + `shop/api`."""

    registry: str
    repository: str

    def __post_init__(self) -> None:
        validate_registry(self.registry)
        validate_repository(self.repository)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference: a name with a tag, a digest, or both (the digest is what gets pulled)."""

    name: ImageName
    tag: str | None = None
    digest: str | None = None

    @property
    def pins_digest(self) -> bool:
        """True when the reference names content, not a mutable pointer."""
        return self.digest is not None

    def __str__(self) -> str:
        text = str(self.name)
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> ImageReference:
    """Parse an image reference the way a container runtime does.

    A first component with a `.` or `:` or equal to `localhost` is a registry; otherwise the registry is
    `docker.io`, where single-component names live under `library/`. A reference without tag or digest
    means `:latest`. When both a tag and a digest are given, the runtime pulls the digest.
    """
    if not text or len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReferenceError(f"empty or oversized image reference ({len(text)} characters)")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.rsplit("@", 1)
        validate_digest(digest)
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], validate_tag(remainder[colon + 1 :])
    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = validate_registry(first), rest
    else:
        registry, path = DEFAULT_REGISTRY, remainder
    if registry in _LEGACY_DEFAULT_REGISTRIES:
        registry = DEFAULT_REGISTRY
    registry = canonical_registry(registry)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(ImageName(registry, validate_repository(path)), tag, digest)
