"""The registry inventory on Amazon ECR: repositories, images and their latest scan, read-only.

Scan state comes from `DescribeImages` when it reports a finished scan with its summary (basic scanning
does); otherwise from `DescribeImageScanFindings`, which also answers for images whose listing carries
no scan status at all. ECR statuses map onto the ledger's: `COMPLETE` (basic) and `ACTIVE` (enhanced
scanning, Amazon Inspector, findings available) are completed scans, `FAILED` a failed one; anything
else (`IN_PROGRESS`, `PENDING`, `UNSUPPORTED_IMAGE`, ...) is no scan yet. A scan without a completion
time (ECR gives none for some failed scans) is placed at the image's push time, so that re-runs see the
same scan again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tagwarden.domain.images import ImageName, InvalidReferenceError, ecr_host_parts, ecr_registry
from tagwarden.domain.indexes import (
    ATTESTATION_MANIFEST,
    INDEX_MEDIA_TYPES,
    REFERENCE_TYPE_ANNOTATION,
    ImageIndex,
    IndexChild,
    is_index,
)
from tagwarden.domain.registry import RegistryImage, RegistryRepository, RegistryScan
from tagwarden.domain.scans import ScanStatus
from tagwarden.domain.tag_protection import ProtectionSetting, TagMutability
from tagwarden.domain.tags import TagRef
from tagwarden.observability import logger, metrics
from tagwarden.ports import ManifestUnreadableError, TagwardenError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

    from tagwarden.adapters.aws_clients import AccountEcrClients

_SCAN_STATUSES: Mapping[str, tuple[ScanStatus, str]] = {
    "COMPLETE": (ScanStatus.COMPLETE, "ecr-basic"),
    "FAILED": (ScanStatus.FAILED, "ecr-basic"),
    "ACTIVE": (ScanStatus.COMPLETE, "inspector"),
}


# No scan yet, or the image or repository was deleted while the backfill ran: nothing to record.
_NOTHING_SCANNED = frozenset({"ScanNotFoundException", "ImageNotFoundException", "RepositoryNotFoundException"})
# BatchGetImage returns a manifest only in a media type the caller accepts: indexes, and the single-platform
# types a tag may also name (asked only for where a tag points, when the manifest itself is not read).
_ACCEPTED_MEDIA_TYPES = [
    *sorted(INDEX_MEDIA_TYPES),
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
]
# The registry will not show it to this role: retrying cannot help.
# AccessDenied: STS refused to let the function assume a member account's read role (the member template
# is not deployed there, or trusts another central account).
_REFUSED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "KmsException"})


class RegistryUnavailableError(TagwardenError):
    """ECR could not be read (after the client's own retries)."""


class RepositoryNotFoundError(TagwardenError):
    """A repository named on the command line does not exist in the registry."""


@contextmanager
def _registry_errors(operation: str) -> Iterator[None]:
    """AWS errors become the core's own: a missing repository, or an unavailable registry."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "RepositoryNotFoundException":
            message = error.response.get("Error", {}).get("Message", "")
            raise RepositoryNotFoundError(f"repository not found: {message or code}") from error
        raise RegistryUnavailableError(f"{operation} failed: {code or error}") from error
    except BotoCoreError as error:
        raise RegistryUnavailableError(f"{operation} failed: {error}") from error


class EcrRegistry:
    """Lists an ECR registry for the backfill (an `ImageInventory`), and reads image indexes and where tags
    point for the push guard (a `ManifestSource`), with `BatchGetImage` only."""

    def __init__(self, client: ECRClient) -> None:
        self._client = client
        self._region = client.meta.region_name

    def repositories(self, names: Sequence[str]) -> list[RegistryRepository]:
        """The named repositories of the client's account and region, or all of them."""
        kwargs: dict[str, Any] = {"repositoryNames": list(names)} if names else {}
        found: list[RegistryRepository] = []
        with _registry_errors("DescribeRepositories"):
            for page in self._client.get_paginator("describe_repositories").paginate(**kwargs):
                for repository in page.get("repositories", []):
                    account = repository.get("registryId", "")
                    image = ImageName(ecr_registry(account, self._region), repository.get("repositoryName", ""))
                    found.append(RegistryRepository(image, account, self._region))
        return sorted(found, key=lambda r: r.image.repository)

    def repository_settings(self) -> Iterator[tuple[ImageName, str, ProtectionSetting]]:
        """Every repository with its tag mutability and exclusion filters (`DescribeRepositories`, page by page)."""
        with _registry_errors("DescribeRepositories"):
            for page in self._client.get_paginator("describe_repositories").paginate():
                for repository in page.get("repositories", []):
                    account = repository.get("registryId", "")
                    image = ImageName(ecr_registry(account, self._region), repository.get("repositoryName", ""))
                    filters = tuple(f["filter"] for f in repository.get("imageTagMutabilityExclusionFilters", []))
                    # A repository listed without a setting has ECR's default.
                    mutability = TagMutability(repository.get("imageTagMutability") or TagMutability.MUTABLE)
                    yield image, account, ProtectionSetting(mutability, filters)

    def images(self, repository: RegistryRepository) -> list[RegistryImage]:
        """Every image of the repository (`DescribeImages`, paginated)."""
        found: list[RegistryImage] = []
        with _registry_errors("DescribeImages"):
            pages = self._client.get_paginator("describe_images").paginate(
                registryId=repository.account, repositoryName=repository.image.repository
            )
            for page in pages:
                for detail in page.get("imageDetails", []):
                    digest = detail.get("imageDigest")
                    if not digest:
                        continue
                    pushed_at = _utc(detail.get("imagePushedAt") or datetime.fromtimestamp(0, UTC))
                    status = detail.get("imageScanStatus", {}).get("status")
                    summary: Mapping[str, Any] = detail.get("imageScanFindingsSummary", {})
                    listed = _scan(status, summary, pushed_at) if summary.get("imageScanCompletedAt") else None
                    found.append(
                        RegistryImage(
                            repository=repository,
                            digest=digest,
                            tags=tuple(detail.get("imageTags", [])),
                            pushed_at=pushed_at,
                            media_type=detail.get("imageManifestMediaType"),
                            listed_scan=listed,
                            # No status at all: the listing may just not say, so ask. An unfinished or
                            # unsupported scan has nothing to ask about.
                            scan_to_look_up=listed is None and (status is None or status in _SCAN_STATUSES),
                        )
                    )
        return found

    def scan_of(self, image: RegistryImage) -> RegistryScan | None:
        """The image's latest finished scan from `DescribeImageScanFindings`, or None if there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        repository = image.repository
        try:
            response = self._client.describe_image_scan_findings(
                registryId=repository.account,
                repositoryName=repository.image.repository,
                imageId={"imageDigest": image.digest},
                maxResults=1,  # only the status and the counts are wanted, not the findings themselves
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _NOTHING_SCANNED:
                return None
            raise RegistryUnavailableError(f"DescribeImageScanFindings failed: {code or error}") from error
        except BotoCoreError as error:
            raise RegistryUnavailableError(f"DescribeImageScanFindings failed: {error}") from error
        status = response.get("imageScanStatus", {}).get("status")
        findings: Mapping[str, Any] = response.get("imageScanFindings", {})
        return _scan(status, findings, image.pushed_at)

    def index_of(self, image: ImageName, digest: str) -> ImageIndex | None:
        """The entries of the image index `digest` (BatchGetImage); None when ECR no longer holds it."""
        found = self._batch_get_image(image, {"imageDigest": digest})
        if found is None:
            return None
        media_type = found.get("imageManifestMediaType")
        try:
            manifest = json.loads(found.get("imageManifest", ""))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict):
            logger.warning("unreadable image index manifest", extra={"digest": digest})
            return ImageIndex(digest, ())
        if not is_index(media_type or manifest.get("mediaType")):
            # The event said index but the registry holds a single manifest: it has no platforms to record.
            return ImageIndex(digest, ())
        return ImageIndex(digest, _children(digest, manifest.get("manifests")))

    def tag_digest(self, tag: TagRef) -> str | None:
        """The digest the tag names in ECR now (BatchGetImage by tag); None when ECR has no such tag."""
        found = self._batch_get_image(tag.image, {"imageTag": tag.tag})
        if found is None:
            return None
        digest = found.get("imageId", {}).get("imageDigest")
        return str(digest) if digest else None

    def _batch_get_image(self, image: ImageName, image_id: Mapping[str, str]) -> Mapping[str, Any] | None:
        """One image by digest or tag, or None when it (or its repository) is not there."""
        from botocore.exceptions import BotoCoreError, ClientError

        account, _ = ecr_host_parts(image.registry)
        kwargs: dict[str, Any] = {"registryId": account} if account else {}
        try:
            response = self._client.batch_get_image(
                repositoryName=image.repository,
                imageIds=[dict(image_id)],  # type: ignore[list-item]
                acceptedMediaTypes=_ACCEPTED_MEDIA_TYPES,
                **kwargs,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "RepositoryNotFoundException":
                return None
            if code in _REFUSED:
                raise ManifestUnreadableError(f"BatchGetImage refused: {code}") from error
            raise RegistryUnavailableError(f"BatchGetImage failed: {code or error}") from error
        except BotoCoreError as error:
            raise RegistryUnavailableError(f"BatchGetImage failed: {error}") from error
        images = response.get("images", [])
        if images:
            return images[0]
        failures = {failure.get("failureCode", "") for failure in response.get("failures", [])}
        if failures - {"ImageNotFound", "ImageTagDoesNotMatchDigest", "ImageReferencedByManifestList"}:
            # KmsError, UnsupportedImageType...: not an absence, so not to be recorded as one.
            raise ManifestUnreadableError(f"BatchGetImage: {sorted(failures)}")
        return None


class OrganizationRegistries:
    """The push guard's `ManifestSource` across an organization: each image is read in its own registry's
    account and region (`AccountEcrClients`: the member read role for another account), since ECR answers
    `BatchGetImage` for another account's repository only when that repository's policy allows it."""

    def __init__(self, clients: AccountEcrClients) -> None:
        self._clients = clients
        self._registries: dict[tuple[str | None, str | None], EcrRegistry] = {}

    def index_of(self, image: ImageName, digest: str) -> ImageIndex | None:
        """The entries of the image index `digest`, read in the image's own registry."""
        return self._registry(image).index_of(image, digest)

    def tag_digest(self, tag: TagRef) -> str | None:
        """The digest the tag names now, read in the tag's own registry."""
        return self._registry(tag.image).tag_digest(tag)

    def _registry(self, image: ImageName) -> EcrRegistry:
        key = ecr_host_parts(image.registry)
        registry = self._registries.get(key)
        if registry is None:
            registry = self._registries[key] = EcrRegistry(self._clients.ecr(*key))
        return registry


def _children(digest: str, entries: object) -> tuple[IndexChild, ...]:
    """An index's `manifests` as entries; a malformed entry is skipped with a warning (never a crash)."""
    children: list[IndexChild] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            metrics.add_metric(name="MalformedIndexEntries", unit="Count", value=1)
            logger.warning("image index entry skipped", extra={"index": digest, "entry": str(entry)[:80]})
            continue
        platform = _mapping(entry.get("platform"))
        annotations = _mapping(entry.get("annotations"))
        parts = [str(platform.get("os", "unknown")), str(platform.get("architecture", "unknown"))]
        if platform.get("variant"):
            parts.append(str(platform["variant"]))
        try:
            children.append(
                IndexChild(
                    digest=str(entry.get("digest", "")),
                    platform="/".join(parts),
                    attestation=annotations.get(REFERENCE_TYPE_ANNOTATION) == ATTESTATION_MANIFEST,
                )
            )
        except InvalidReferenceError:
            metrics.add_metric(name="MalformedIndexEntries", unit="Count", value=1)
            logger.warning("image index entry skipped", extra={"index": digest, "entry_digest": entry.get("digest")})
    return tuple(children)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _scan(status: str | None, summary: Mapping[str, Any], pushed_at: datetime) -> RegistryScan | None:
    if status is None or status not in _SCAN_STATUSES:
        return None
    scan_status, scanner = _SCAN_STATUSES[status]
    if "enhancedFindings" in summary:
        scanner = "inspector"
    completed_at = summary.get("imageScanCompletedAt")
    return RegistryScan(
        status=scan_status,
        scanner=scanner,
        completed_at=_utc(completed_at) if isinstance(completed_at, datetime) else pushed_at,
        finding_counts={str(name): int(count) for name, count in summary.get("findingSeverityCounts", {}).items()},
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
