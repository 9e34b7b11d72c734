"""The tag reverter's input: SQS records whose body is a revert request the push guard sent
(`adapters.sqs_revert_requests.request_body`)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json, field_validator

from tagwarden.domain.images import ImageName, validate_registry, validate_repository, validate_tag
from tagwarden.domain.revert import RevertRequest
from tagwarden.domain.tags import TagRef


class RevertRequestMessage(BaseModel):
    """Which tag, and which of its history entries asked for the revert (what to put back is read there)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: str
    repository: str
    tag: str
    # The entry's history position: `ordering_key` (fixed-width UTC time, `#`, the event id).
    entry_key: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#.{1,256}$")

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        return validate_registry(value)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        return validate_tag(value)


class RevertRequestRecord(SqsRecordModel):
    """One SQS record of the reverter's queue, its body parsed."""

    body: Json[RevertRequestMessage]

    def to_request(self) -> RevertRequest:
        """The request the record carries."""
        message = self.body
        return RevertRequest(TagRef(ImageName(message.registry, message.repository), message.tag), message.entry_key)

    @property
    def attempt(self) -> int:
        """How many times SQS has delivered this message (this delivery included)."""
        return int(self.attributes.ApproximateReceiveCount)
