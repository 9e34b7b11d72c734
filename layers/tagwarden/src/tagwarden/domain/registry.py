"""A registry's inventory as it is now: repositories, their images and the images' latest scans."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tagwarden.domain.images import ImageName
from tagwarden.domain.scans import ScanStatus


@dataclass(frozen=True, slots=True)
class RegistryRepository:
    """A repository as the registry lists it, with the account and region that own it."""

    image: ImageName
    account: str
    region: str


@dataclass(frozen=True, slots=True)
class RegistryScan:
    """The latest finished scan the registry reports for an image."""

    status: ScanStatus
    scanner: str
    completed_at: datetime
    # As the registry labels them (normalised when the scan is recorded).
    finding_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegistryImage:
    """One image (digest) of a repository, with the tags that name it now."""

    repository: RegistryRepository
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    # The scan the listing itself reported, when it reported a finished one.
    listed_scan: RegistryScan | None = None
    # False when the listing says there is nothing to look up (scan in progress, unsupported image...).
    scan_to_look_up: bool = True
    # The manifest's media type: an image index has its platform manifests recorded when it is seeded.
    media_type: str | None = None
