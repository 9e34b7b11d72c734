"""Which tags must never move (protected), which are expected to move (mutable), and which are metadata.

Signature and attestation tags are not images anyone deploys: cosign stores signatures, attestations and
SBOMs under `sha256-<digest>.sig|.att|.sbom` (optionally after an attachment-tag prefix), and clients of a
registry without the OCI referrers API keep an index of referrers under `sha256-<digest>` (sha512-...
likewise), re-pushed whenever a referrer is added. These tags move by design.

A tag is a signature tag only if it matches a signature pattern AND embeds a whole digest (`sha256-` or
`sha512-` and 64 hex digits, as cosign and the referrers tag schema write them): a deployable tag named
`sha256-prod` is not one, so nobody lowers a real tag's alerts by naming it like a signature.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PROTECTED_TAG_PATTERNS: tuple[str, ...] = ("v[0-9]*.[0-9]*", "[0-9]*.[0-9]*")
DEFAULT_MUTABLE_TAG_PATTERNS: tuple[str, ...] = ("latest",)
DEFAULT_SIGNATURE_TAG_PATTERNS: tuple[str, ...] = (
    "*sha256-*.sig",
    "*sha256-*.att",
    "*sha256-*.sbom",
    "sha256-*",
    "*sha512-*.sig",
    "*sha512-*.att",
    "*sha512-*.sbom",
    "sha512-*",
)


# The digest a signature or referrers tag is derived from: `sha256-<64 hex>` (sha512 truncated to 64).
_EMBEDDED_DIGEST = re.compile(r"(?:^|[^0-9a-z])sha(?:256|512)-[0-9a-f]{64}(?:$|\.)")


class TagClass(StrEnum):
    """How the tag policy classifies a tag."""

    PROTECTED = "protected"
    MUTABLE = "mutable"
    SIGNATURE = "signature"
    ORDINARY = "ordinary"


def split_patterns(value: str) -> tuple[str, ...]:
    """Split a comma-separated list of shell-style globs, dropping blanks."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """Shell-style glob patterns (case-sensitive, like tags) that classify tags.

    A signature tag is classified as one first: its name is derived from a digest, and no protected
    pattern is meant for it. A tag matching both the protected and the mutable lists is protected: when in
    doubt, the louder alert is the safer one.
    """

    protected: tuple[str, ...] = DEFAULT_PROTECTED_TAG_PATTERNS
    mutable: tuple[str, ...] = DEFAULT_MUTABLE_TAG_PATTERNS
    signature: tuple[str, ...] = DEFAULT_SIGNATURE_TAG_PATTERNS

    def classify(self, tag: str) -> TagClass:
        """Classify one tag."""
        if _EMBEDDED_DIGEST.search(tag) and any(fnmatch.fnmatchcase(tag, p) for p in self.signature):
            return TagClass.SIGNATURE
        if any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.protected):
            return TagClass.PROTECTED
        if any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.mutable):
            return TagClass.MUTABLE
        return TagClass.ORDINARY
