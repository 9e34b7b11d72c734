"""Tag-protection posture of a whole registry: each repository's setting, whether protected tags can move,
and the setting (and `aws ecr` command) that closes each gap (rules: `domain.tag_protection`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tagwarden.domain.images import ImageName, ecr_host_parts
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tag_protection import Exposure, ProtectionSetting, closing_command, closing_setting, exposure


@dataclass(frozen=True, slots=True)
class RepositoryPosture:
    """One repository's setting, its exposure, and what would close the gap (None: no gap)."""

    image: ImageName
    registry_id: str
    setting: ProtectionSetting
    exposure: Exposure
    closing: ProtectionSetting | None

    @property
    def command(self) -> str | None:
        """The `aws ecr put-image-tag-mutability` command that closes the gap."""
        if self.closing is None:
            return None
        _, region = ecr_host_parts(self.image.registry)
        return closing_command(self.image.repository, self.registry_id, region, self.closing)


def assess(
    repositories: Iterable[tuple[ImageName, str, ProtectionSetting]], policy: TagPolicy
) -> Iterator[RepositoryPosture]:
    """The posture of each repository, as the registry lists them."""
    for image, registry_id, setting in repositories:
        yield RepositoryPosture(
            image, registry_id, setting, exposure(setting, policy), closing_setting(setting, policy)
        )
