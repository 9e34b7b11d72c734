"""ECR `Image Action` events (EventBridge), turned into push and delete facts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.images import (
    ImageName,
    ecr_registry,
    validate_digest,
    validate_repository,
    validate_tag,
)
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import ImageAction, TagAction

_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_EVENT_ID_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
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


class EcrImageActionDetail(BaseModel):
    """`detail` of an ECR Image Action event. Unknown fields (media types, ...) are accepted and unused."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    result: str = Field(max_length=64)
    action_type: str = Field(alias="action-type", max_length=64)
    repository_name: str = Field(alias="repository-name", max_length=256)
    image_digest: str | None = Field(default=None, alias="image-digest", max_length=200)
    image_tag: str | None = Field(default=None, alias="image-tag", max_length=300)
    # `application/vnd.oci.image.index.v1+json` or a Docker manifest list for a multi-platform push.
    manifest_media_type: str | None = Field(default=None, alias="manifest-media-type", max_length=256)

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
        # ECR sends an empty or missing image-tag for untagged pushes: both mean "no tag".
        return validate_tag(value) if value else None

    @model_validator(mode="after")
    def _digest_required(self) -> EcrImageActionDetail:
        if self.acted_on is not None and self.image_digest is None:
            raise ValueError(f"image-digest is required for a successful {self.action_type}")
        return self

    @property
    def acted_on(self) -> TagAction | None:
        """The action Tagwarden records, or None for failed results and other action types."""
        return _ACTED_ON.get(self.action_type) if self.result == "SUCCESS" else None


class EcrImageActionEvent(EcrEventMixin, EventBridgeModel):
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
        return ImageAction(
            action=action,
            image=ImageName(ecr_registry(self.account, self.region), self.detail.repository_name),
            digest=self.detail.image_digest,
            tag=self.detail.image_tag,
            source=SourceEvent(self.id, self.time, self.account, self.region),
            media_type=self.detail.manifest_media_type,
        )
