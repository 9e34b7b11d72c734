"""Multi-platform images: an image index (OCI) or manifest list (Docker) and the platform manifests it holds.

A tag pushed with `docker buildx build --platform ...` names an index; ECR basic scanning and Amazon
Inspector scan its platform manifests, never the index itself. The index's scan state is therefore derived
from its children's (`derived_scan`), and attestation manifests (buildx provenance and SBOMs, platform
`unknown/unknown`) are left out: scanners skip them and no runtime ever runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tagwarden.domain.images import validate_digest
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict

OCI_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_MEDIA_TYPES = frozenset({OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST})
# BuildKit's annotation on an index entry that holds attestations for another entry (util/attestation).
REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"


def is_index(media_type: str | None) -> bool:
    """Whether a manifest media type is an image index or manifest list."""
    return media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class IndexChild:
    """One entry of an index: a platform manifest (`linux/arm64/v8`), or an attestation manifest."""

    digest: str
    platform: str
    attestation: bool = False

    def __post_init__(self) -> None:
        validate_digest(self.digest)


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """An index as the registry holds it: its digest and its entries, in the index's order."""

    digest: str
    children: tuple[IndexChild, ...]

    def __post_init__(self) -> None:
        validate_digest(self.digest)

    @property
    def platform_digests(self) -> tuple[str, ...]:
        """The runnable platform manifests (attestations excluded), each once."""
        return tuple(dict.fromkeys(child.digest for child in self.children if not child.attestation))


def derived_scan(index: ImageIndex, scans: Mapping[str, ScanState]) -> ScanState | None:
    """The index's scan state, from the latest scans of its platform manifests (`scans`, by digest).

    - every platform manifest has a completed scan: COMPLETE, failing if any of them fails, with the
      highest count of each finding severity among them, at the time of the latest of those scans;
    - every platform manifest has a scan but some only FAILED ones: FAILED (nothing checked them);
    - some platform manifest has no scan yet, or the index has no platform manifest: None (unscanned).

    The derived state takes the event key of the latest child scan, so it orders against other scan
    states the way a scan of a single image would.
    """
    platforms = index.platform_digests
    states = [scans.get(digest) for digest in platforms]
    if not platforms or any(state is None for state in states):
        return None
    known = [state for state in states if state is not None]
    latest = max(known, key=lambda state: (state.event_key or "", state.scanned_at))
    scanner = ",".join(sorted({state.scanner for state in known}))
    if not all(state.completed for state in known):
        return ScanState(ScanStatus.FAILED, latest.scanned_at, scanner, event_key=latest.event_key)
    counts: dict[str, int] = {}
    for state in known:
        for severity, count in state.finding_counts.items():
            counts[severity] = max(counts.get(severity, 0), count)
    failing = any(state.verdict is not Verdict.PASS for state in known)
    return ScanState(
        status=ScanStatus.COMPLETE,
        scanned_at=max(state.scanned_at for state in known),
        scanner=scanner,
        verdict=Verdict.FAIL if failing else Verdict.PASS,
        finding_counts=counts,
        event_key=latest.event_key,
    )
