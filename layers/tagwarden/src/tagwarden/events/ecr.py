"""ECR events (EventBridge) that point a tag at content, turned into push and delete facts.

`ECR Image Action` reports pushes and deletes. `ECR Pull Through Cache Action` reports that a cache
repository synced a tag from its upstream registry, and `ECR Replication Action` that an image was
replicated into this account and region: both make a tag name content, like a push, so the push guard
records them as pushes (an upstream tag that moves is a move).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.images import (
    ImageName,
    ecr_registry,
    is_valid_tag,
    validate_digest,
    validate_registry_tag,
    validate_repository,
)
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import ImageAction, TagAction
from tagwarden.observability import metrics

_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_EVENT_ID_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
# Four letters for the EU sovereign cloud (`eusc-de-east-1`).
_REGION_RE = re.compile(r"[a-z]{2,4}(-[a-z]+)+-[0-9]+")
_ACTED_ON = {"PUSH": TagAction.PUSH, "DELETE": TagAction.DELETE}


class EcrEventMixin(BaseModel):
    """Account and region name the ECR registry, so they are validated like any name in a ledger key."""

    @field_validator("id", check_fields=False)
    @classmethod
    def _event_id(cls, value: str) -> str:
        # The id becomes part of a ledger sort key: keep it short and free of separators.
        if not _EVENT_ID_RE.fullmatch(value):
            raise ValueError("must be an EventBridge event id (letters, digits and '-', at most 128)")
        return value

    @field_validator("time", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # EventBridge times are UTC; one without a zone is read as UTC, never compared naively.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    @field_validator("account", check_fields=False)
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT_RE.fullmatch(value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("region", check_fields=False)
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION_RE.fullmatch(value):
            raise ValueError("must be an AWS region name")
        return value


class _ImageDetail(BaseModel):
    """The image fields every ECR event that points a tag at content carries."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    repository_name: str = Field(alias="repository-name", max_length=256)
    image_digest: str | None = Field(default=None, alias="image-digest", max_length=200)
    image_tag: str | None = Field(default=None, alias="image-tag", max_length=300)

    @field_validator("repository_name")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("image_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        return validate_digest(value) if value else None

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        # ECR sends an empty or missing image-tag for untagged pushes: both mean "no tag". A tag ECR accepts but
        # the ledger cannot key (129-300 characters) is kept: `tag_action` ignores the event, with its reason.
        return validate_registry_tag(value) if value else None


class EcrImageActionDetail(_ImageDetail):
    """`detail` of an ECR Image Action event. Unknown fields (media types, ...) are accepted and unused."""

    result: str = Field(max_length=64)
    action_type: str = Field(alias="action-type", max_length=64)
    # `application/vnd.oci.image.index.v1+json` or a Docker manifest list for a multi-platform push.
    manifest_media_type: str | None = Field(default=None, alias="manifest-media-type", max_length=256)

    @model_validator(mode="after")
    def _digest_required(self) -> EcrImageActionDetail:
        if self.acted_on is not None and self.image_digest is None:
            raise ValueError(f"image-digest is required for a successful {self.action_type}")
        return self

    @property
    def acted_on(self) -> TagAction | None:
        """The action Tagwarden records, or None for failed results and other action types."""
        return _ACTED_ON.get(self.action_type) if self.result == "SUCCESS" else None


class EcrImageAction(EcrEventMixin, EventBridgeModel):
    """An EventBridge event with `source: aws.ecr` and `detail-type: ECR Image Action`."""

    source: Literal["aws.ecr"]
    detail_type: Literal["ECR Image Action"] = Field(alias="detail-type")
    detail: EcrImageActionDetail

    def to_fact(self) -> ImageAction | IgnoredEvent:
        """The push or delete this event reports, or why it is ignored."""
        action = self.detail.acted_on
        if action is None or self.detail.image_digest is None:
            return IgnoredEvent(
                event_id=self.id,
                reason=f"result {self.detail.result!r}, action-type {self.detail.action_type!r}",
            )
        return tag_action(self, action, self.detail, media_type=self.detail.manifest_media_type)


class EcrPullThroughCacheDetail(_ImageDetail):
    """`detail` of an ECR Pull Through Cache Action event.

    `repository-name` is the cache repository's full name, which already starts with the rule's
    `ecr-repository-prefix` (`docker-hub/alpine` for prefix `docker-hub`): it is what pods pull.
    """

    sync_status: str = Field(alias="sync-status", max_length=64)
    ecr_repository_prefix: str | None = Field(default=None, alias="ecr-repository-prefix", max_length=256)
    upstream_registry_url: str | None = Field(default=None, alias="upstream-registry-url", max_length=512)
    failure_code: str | None = Field(default=None, alias="failure-code", max_length=256)
    failure_reason: str | None = Field(default=None, alias="failure-reason", max_length=1024)


class EcrPullThroughCacheAction(EcrEventMixin, EventBridgeModel):
    """A pull-through cache rule synced an image from its upstream registry into a cache repository."""

    source: Literal["aws.ecr"]
    detail_type: Literal["ECR Pull Through Cache Action"] = Field(alias="detail-type")
    detail: EcrPullThroughCacheDetail

    def to_fact(self) -> ImageAction | IgnoredEvent:
        """The synced tag as a push into the cache repository, or why the event is ignored."""
        detail = self.detail
        if detail.sync_status != "SUCCESS" or detail.image_digest is None:
            # A failed sync changed nothing in the cache repository.
            return IgnoredEvent(
                self.id,
                f"pull-through cache sync-status {detail.sync_status!r}, failure-code {detail.failure_code!r}",
            )
        return tag_action(self, TagAction.PUSH, detail)


class EcrReplicationDetail(_ImageDetail):
    """`detail` of an ECR Replication Action event; `source-account`/`source-region` name the origin."""

    result: str = Field(max_length=64)
    action_type: str = Field(alias="action-type", max_length=64)
    source_account: str | None = Field(default=None, alias="source-account", max_length=12)
    source_region: str | None = Field(default=None, alias="source-region", max_length=64)


class EcrReplicationAction(EcrEventMixin, EventBridgeModel):
    """ECR replicated an image into this registry (the event arrives in the destination account and region)."""

    source: Literal["aws.ecr"]
    detail_type: Literal["ECR Replication Action"] = Field(alias="detail-type")
    detail: EcrReplicationDetail

    def to_fact(self) -> ImageAction | IgnoredEvent:
        """The replicated tag as a push into the destination repository, or why the event is ignored."""
        detail = self.detail
        if detail.result != "SUCCESS" or detail.action_type != "REPLICATE" or detail.image_digest is None:
            return IgnoredEvent(self.id, f"replication result {detail.result!r}, action-type {detail.action_type!r}")
        # The envelope's account and region are the destination's: where the replica can be pulled from.
        return tag_action(self, TagAction.PUSH, detail)


class _TaggedImage(Protocol):
    @property
    def repository_name(self) -> str: ...
    @property
    def image_digest(self) -> str | None: ...
    @property
    def image_tag(self) -> str | None: ...


def tag_action(
    event: EventBridgeModel, action: TagAction, detail: _TaggedImage, media_type: str | None = None
) -> ImageAction | IgnoredEvent:
    """What an ECR event did to a tag, in the event's own account and region (for replication, the
    destination's); ignored, with its reason and a metric, when the tag is longer than the ledger can key."""
    assert detail.image_digest is not None
    tag = detail.image_tag
    if tag is not None and not is_valid_tag(tag):
        metrics.add_metric(name="UnstorableTags", unit="Count", value=1)
        return IgnoredEvent(
            event.id, f"tag {tag[:80]!r} is not a valid image tag (the ledger keys up to 128 characters)"
        )
    return ImageAction(
        action=action,
        image=ImageName(ecr_registry(event.account, event.region), detail.repository_name),
        digest=detail.image_digest,
        tag=tag,
        source=SourceEvent(event.id, event.time, event.account, event.region),
        media_type=media_type,
    )


class EcrImageActionEvent(
    RootModel[
        Annotated[EcrImageAction | EcrPullThroughCacheAction | EcrReplicationAction, Field(discriminator="detail_type")]
    ]
):
    """Any ECR event that points a tag at content, told apart by `detail-type`: what the push guard reads."""

    def to_fact(self) -> ImageAction | IgnoredEvent:
        """The push or delete the event reports, or why it is ignored."""
        return self.root.to_fact()
