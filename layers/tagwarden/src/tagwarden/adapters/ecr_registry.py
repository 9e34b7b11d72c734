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

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tagwarden.domain.images import ImageName, ecr_registry
from tagwarden.domain.registry import RegistryImage, RegistryRepository, RegistryScan
from tagwarden.domain.scans import ScanStatus
from tagwarden.ports import TagwardenError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

_SCAN_STATUSES: Mapping[str, tuple[ScanStatus, str]] = {
    "COMPLETE": (ScanStatus.COMPLETE, "ecr-basic"),
    "FAILED": (ScanStatus.FAILED, "ecr-basic"),
    "ACTIVE": (ScanStatus.COMPLETE, "inspector"),
}


# No scan yet, or the image or repository was deleted while the backfill ran: nothing to record.
_NOTHING_SCANNED = frozenset({"ScanNotFoundException", "ImageNotFoundException", "RepositoryNotFoundException"})


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
    """Lists an ECR registry for the backfill (an `ImageInventory`)."""

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
