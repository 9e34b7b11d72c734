"""Image names, tags and digests, parsed per the OCI distribution reference grammar.

Everything that ends up in a ledger key passes through these validators first, so a name can never
smuggle a key separator (`#`, `|`, `@`, `:`) into the ledger.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
# The host Docker Hub's registry API answers on: `docker.io` names the registry, not that server.
DOCKER_HUB_API = "registry-1.docker.io"
_LEGACY_DEFAULT_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(
    r"(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)"
    r"|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
# Every hostname of a private ECR registry, after kubernetes/cloud-provider-aws's ECR credential provider
# (`ecrPrivateHostPattern`): `dkr.ecr` and `dkr.ecr-fips` under the partition's DNS suffix, dual-stack
# `dkr-ecr` and `dkr-ecr-fips` under `on.aws` (China: `on.amazonwebservices.com.cn`). Matched on the
# lower-cased host, after an explicit `:443` is dropped.
_ECR_HOST_RE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr(?P<sep>[.-])ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9][a-z0-9-]*)\."
    r"(?P<suffix>amazonaws\.com|amazonaws\.com\.cn|amazonaws\.eu|on\.aws|on\.amazonwebservices\.com\.cn"
    r"|c2s\.ic\.gov|sc2s\.sgov\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)"
)
# What a host that means ECR but is written in a form not listed above still contains.
_ECR_LOOKALIKE_RE = re.compile(r"dkr[.-]ecr", re.IGNORECASE)
# An image id as a container runtime names it (`sha256:<config digest>` or the bare hex): an image already
# on the node, not registry content. Runtimes put it where a reference would be (a container's `image` after
# a pull by digest; `docker run <id>`), and as a reference it would parse as docker.io/library/sha256.
_LOCAL_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}")
_REGION_RE = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]+")
# A region's partition, by its name: (standard DNS suffix, dual-stack suffix or None where there is none).
_PARTITION_SUFFIXES: tuple[tuple[str, str, str | None], ...] = (
    ("cn-", "amazonaws.com.cn", "on.amazonwebservices.com.cn"),
    ("eusc-", "amazonaws.eu", None),
    ("us-isob-", "sc2s.sgov.gov", None),
    ("us-isof-", "csp.hci.ic.gov", None),
    ("us-iso-", "c2s.ic.gov", None),
    ("eu-isoe-", "cloud.adc-e.uk", None),
)
_COMMERCIAL_SUFFIXES = ("amazonaws.com", "on.aws")
MAX_REFERENCE_LENGTH = 4096


class InvalidReferenceError(ValueError):
    """An image name, tag, digest or reference that the distribution grammar does not allow."""


def validate_digest(value: str) -> str:
    """Return the digest if it is a well-formed sha256/sha512 content digest, else raise."""
    if not _DIGEST_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a content digest (sha256:<64 hex> or sha512:<128 hex>): {value[:80]!r}")
    return value


def is_local_image_id(text: str) -> bool:
    """Whether the text is a runtime's id of an image on the node (`sha256:<hex>` or bare hex), not a reference."""
    return _LOCAL_IMAGE_ID_RE.fullmatch(text) is not None


def validate_tag(value: str) -> str:
    """Return the tag if it is a valid image tag (up to 128 of [A-Za-z0-9_.-], not starting with . or -)."""
    if not _TAG_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a valid image tag: {value[:80]!r}")
    return value


# What ECR accepts as a tag: the OCI grammar's characters, up to 300 of them.
_ECR_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}")


def validate_registry_tag(value: str) -> str:
    """Return the tag if ECR could have accepted it (it may still be too long for the ledger), else raise."""
    if not _ECR_TAG_RE.fullmatch(value):
        raise InvalidReferenceError(f"not a valid image tag: {value[:80]!r}")
    return value


def is_valid_tag(value: str) -> bool:
    """Whether the ledger can key this tag (ECR accepts tags of up to 300 characters; the OCI grammar 128)."""
    return _TAG_RE.fullmatch(value) is not None


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


def _partition_suffixes(region: str) -> tuple[str, str | None]:
    for prefix, standard, dual_stack in _PARTITION_SUFFIXES:
        if region.startswith(prefix):
            return standard, dual_stack
    return _COMMERCIAL_SUFFIXES


def ecr_registry(account: str, region: str) -> str:
    """The canonical registry host of an account's private ECR registry in a region.

    One form per registry, `<account>.dkr.ecr.<region>.<partition DNS suffix>`, is what ledger keys use:
    events name a registry by account and region, and every other hostname of it maps to this one.
    """
    if not re.fullmatch(r"[0-9]{12}", account) or not _REGION_RE.fullmatch(region):
        raise InvalidReferenceError(f"not an AWS account and region: {account[:20]!r} {region[:30]!r}")
    return f"{account}.dkr.ecr.{region}.{_partition_suffixes(region)[0]}"


# Every reference, scope judgement and usage key asks this of the same few hosts, thousands of times per audit
# delivery: the answer depends on the host text alone, so it is kept per exact text (a few hundred hosts).
@functools.lru_cache(maxsize=1024)
def _ecr_parts(registry: str) -> tuple[str, str] | None:
    """Account and region of any hostname form of a private ECR registry, if it is one."""
    host = registry.lower()
    if host.endswith(":443"):
        host = host[:-4]
    match = _ECR_HOST_RE.fullmatch(host)
    if match is None or not _REGION_RE.fullmatch(match["region"]):
        return None
    standard, dual_stack = _partition_suffixes(match["region"])
    # `dkr.ecr` lives under the partition's suffix, `dkr-ecr` under its dual-stack one: any other pairing
    # (a China region under amazonaws.com, dual-stack in a partition without it) is no AWS endpoint.
    expected = standard if match["sep"] == "." else dual_stack
    return (match["account"], match["region"]) if match["suffix"] == expected else None


def is_ecr_registry(registry: str) -> bool:
    """True for any hostname (any form, any account and region) of a private ECR registry."""
    return _ecr_parts(registry) is not None


def looks_like_ecr(registry: str) -> bool:
    """True for a host that names ECR's registry endpoint (`dkr.ecr`, `dkr-ecr`) in a form not recognised.

    Such a reference is most likely an ECR image written in a hostname form this parser does not know
    yet; the audit watcher reports it rather than treat it silently as another registry.
    """
    return _ecr_parts(registry) is None and _ECR_LOOKALIKE_RE.search(registry) is not None


def canonical_registry(registry: str) -> str:
    """The canonical host (`ecr_registry`) for every hostname of an ECR registry; other hosts unchanged.

    FIPS, dual-stack, an explicit `:443` and upper-case letters all reach the same registry, whose
    ledger keys use the canonical form.
    """
    parts = _ecr_parts(registry)
    return ecr_registry(*parts) if parts is not None else registry


def ecr_host_parts(registry: str) -> tuple[str | None, str | None]:
    """Account and region of an ECR registry host; (None, None) for other registries."""
    parts = _ecr_parts(registry)
    return parts if parts is not None else (None, None)


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
