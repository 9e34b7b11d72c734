"""ECR API calls recorded by CloudTrail, as EventBridge delivers them (`detail-type: AWS API Call via CloudTrail`).

EventBridge receives these only from a trail that logs management events (see the README). The records hold
who made the call (`userIdentity`, `sourceIPAddress`, `userAgent`), what was asked (`requestParameters`)
and what ECR answered (`responseElements`; null for a failed call, which also carries `errorCode`). Failed
calls changed nothing and are ignored. The calls read here:

| eventName                                   | fact                                                       |
|---------------------------------------------|------------------------------------------------------------|
| `PutImage`                                  | who pushed the tag (digest from `responseElements`)        |
| `BatchDeleteImage`                          | who deleted each tag ECR reports (by digest: its tags)     |
| `PutImageTagMutability`, `CreateRepository` | a repository's tag mutability setting                      |
| `Create/UpdateRepositoryCreationTemplate`   | a creation template's tag mutability setting (by prefix)   |
| `DeleteRepositoryCreationTemplate`          | a creation template gone: its prefix falls back to MUTABLE |
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from tagwarden.domain.alerts import Actor
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.identity import ActorReport, CallsIdentified, DigestDeleted
from tagwarden.domain.images import ImageName, ecr_registry, is_valid_tag, validate_digest, validate_repository
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_protection import (
    ECR_FILTER,
    MAX_EXCLUSION_FILTERS,
    ProtectionSetting,
    SettingsChange,
    SettingsSubject,
    TagMutability,
)
from tagwarden.domain.tags import TagAction, TagRef
from tagwarden.events.ecr import EcrEventMixin

_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_REGION_RE = re.compile(r"[a-z]{2,4}(-[a-z]+)+-[0-9]+")
# ECR's own pattern for a creation template prefix (CreateRepositoryCreationTemplate), or ROOT.
_PREFIX_RE = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?|ROOT")
# CloudTrail event ids are UUIDs; they become part of alert ids and ledger attributes.
_TRAIL_ID_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
_CUT_MARKER = "...[cut]"


def _descriptive(limit: int) -> BeforeValidator:
    """A field that only describes the caller (user agent, ARN, source address): cut to `limit` characters,
    and dropped when it is not a string. A settings change must not be lost (rejected, dead-lettered, no
    alert) because the caller sent a 5,000-character user agent: the call still happened."""

    def cut(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        return value if len(value) <= limit else value[: limit - len(_CUT_MARKER)] + _CUT_MARKER

    return BeforeValidator(cut)


# Lengths kept: generous for real values (an ARN is at most 2048, IAM names 64 to 128), small enough for
# ledger items and alert bodies.
_Kind = Annotated[str | None, _descriptive(64)]
_Name = Annotated[str | None, _descriptive(256)]
_Arn = Annotated[str | None, _descriptive(2048)]
_Text = Annotated[str | None, _descriptive(1024)]


class _Shape(BaseModel):
    """CloudTrail's camelCase fields; unknown fields accepted and unused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class SessionIssuer(_Shape):
    """The role behind an assumed-role session."""

    type: _Kind = None
    arn: _Arn = None
    user_name: _Name = None


class SessionContext(_Shape):
    """Where an assumed-role session came from."""

    session_issuer: SessionIssuer | None = None


class UserIdentity(_Shape):
    """`userIdentity`: who made the call."""

    type: _Kind = None
    principal_id: _Name = None
    arn: _Arn = None
    # Usually 12 digits; `ANONYMOUS_PRINCIPAL` and the like exist too: described, not keyed on.
    account_id: _Kind = None
    user_name: _Name = None
    invoked_by: _Name = None
    session_context: SessionContext | None = None

    @field_validator("session_context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> Any:
        # Descriptive too: a session context of another shape names nobody, and loses nothing else.
        return value if isinstance(value, dict) else None

    @property
    def principal(self) -> str | None:
        """A name people recognise: the user, or the role and session an assumed role acted as."""
        if self.user_name:
            return self.user_name
        issuer = self.session_context.session_issuer if self.session_context else None
        if self.type == "AssumedRole" and self.arn:
            # arn:aws:sts::111122223333:assumed-role/<role>/<session>: both names, as CloudTrail's console shows.
            return self.arn.split(":assumed-role/", 1)[-1]
        if issuer is not None and issuer.user_name:
            return issuer.user_name
        return self.invoked_by or self.principal_id


class ExclusionFilter(_Shape):
    """One `imageTagMutabilityExclusionFilters` entry."""

    filter: str = Field(max_length=128)
    filter_type: Literal["WILDCARD"]

    @field_validator("filter")
    @classmethod
    def _wildcard(cls, value: str) -> str:
        if not ECR_FILTER.fullmatch(value):
            raise ValueError("must be an ECR wildcard filter ([0-9a-zA-Z._*-], 1 to 128 characters)")
        return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class _MutabilityFields(_Shape):
    """The tag mutability fields a request or response may carry."""

    # The request holds what the caller typed: ECR's answer would spell it in capitals, so would a setting
    # ECR accepted in lower case; read either way rather than lose the change.
    image_tag_mutability: Annotated[TagMutability | None, BeforeValidator(_upper)] = None
    image_tag_mutability_exclusion_filters: list[ExclusionFilter] | None = Field(
        default=None, max_length=MAX_EXCLUSION_FILTERS
    )

    def setting(self) -> ProtectionSetting | None:
        """The setting these fields state, if they state one."""
        if self.image_tag_mutability is None:
            return None
        filters = tuple(f.filter for f in self.image_tag_mutability_exclusion_filters or ())
        return ProtectionSetting(self.image_tag_mutability, filters)


class _Detail(_Shape):
    """The CloudTrail record fields every call shares."""

    event_version: _Kind = None
    # Always present in CloudTrail's records; a record without it still says what changed (who: unknown).
    user_identity: UserIdentity = Field(default_factory=UserIdentity)
    event_time: datetime
    event_source: Literal["ecr.amazonaws.com"]
    aws_region: str = Field(max_length=64)
    source_ip_address: _Name = Field(default=None, alias="sourceIPAddress")
    user_agent: _Text = None
    # Whether it is there is what matters (a failed call changed nothing); its text is only described.
    error_code: str | None = None
    event_id: str = Field(alias="eventID", max_length=128)

    @field_validator("user_identity", mode="before")
    @classmethod
    def _identity(cls, value: Any) -> Any:
        # Descriptive as a whole: an identity of another shape names nobody, and loses nothing else.
        return value if isinstance(value, dict) else {}

    @field_validator("error_code", mode="before")
    @classmethod
    def _error(cls, value: Any) -> str | None:
        return None if value is None else str(value)[:256]

    @field_validator("event_id")
    @classmethod
    def _trail_id(cls, value: str) -> str:
        if not _TRAIL_ID_RE.fullmatch(value):
            raise ValueError("must be a CloudTrail event id (letters, digits and '-', at most 128)")
        return value

    @field_validator("aws_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION_RE.fullmatch(value):
            raise ValueError("must be an AWS region name")
        return value

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def actor(self) -> Actor:
        """Who made the call, as alerts and the history name them."""
        identity = self.user_identity
        return Actor(
            arn=identity.arn,
            identity_type=identity.type,
            principal=identity.principal,
            account=identity.account_id,
            source_ip=self.source_ip_address,
            user_agent=self.user_agent,
            trail_event_id=self.event_id,
            trail_event_time=self.event_time,
        )


def _registry_id(value: str | None) -> str | None:
    if value is not None and not _ACCOUNT_RE.fullmatch(value):
        raise ValueError("must be a 12-digit AWS account id")
    return value


# --- PutImage -----------------------------------------------------------------------------------------


class _RepositoryCall(_Shape):
    """`requestParameters` naming a repository (and its registry, when the caller gave one)."""

    repository_name: str = Field(max_length=256)
    registry_id: str | None = None

    _registry = field_validator("registry_id")(_registry_id)

    @field_validator("repository_name")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)


class PutImageRequest(_RepositoryCall):
    """`requestParameters` of PutImage (the manifest itself is not kept)."""

    image_tag: str | None = Field(default=None, max_length=300)
    image_digest: str | None = Field(default=None, max_length=200)


class ImageId(_Shape):
    """An image's digest and the tag the call concerned."""

    image_digest: str | None = Field(default=None, max_length=200)
    image_tag: str | None = Field(default=None, max_length=300)

    @field_validator("image_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        return validate_digest(value) if value else None


class PushedImage(_Shape):
    """`responseElements.image` of PutImage."""

    registry_id: str | None = None
    repository_name: str | None = Field(default=None, max_length=256)
    image_id: ImageId

    _registry = field_validator("registry_id")(_registry_id)


class PutImageResponse(_Shape):
    """`responseElements` of PutImage."""

    image: PushedImage


class PutImageDetail(_Detail):
    """A PutImage record: the last call of every push, naming the tag and (in the response) the digest."""

    event_name: Literal["PutImage"]
    request_parameters: PutImageRequest
    response_elements: PutImageResponse | None = None

    @model_validator(mode="after")
    def _digest_known(self) -> PutImageDetail:
        if self.error_code is None and self.digest is None:
            raise ValueError("responseElements.image.imageId.imageDigest is required for a successful PutImage")
        return self

    @property
    def digest(self) -> str | None:
        """The pushed manifest's digest: ECR's answer, else the one the client asked for."""
        answered = self.response_elements.image.image_id.image_digest if self.response_elements else None
        asked = self.request_parameters.image_digest
        return answered or (validate_digest(asked) if asked else None)


# --- BatchDeleteImage ----------------------------------------------------------------------------------


class BatchDeleteImageRequest(_RepositoryCall):
    """`requestParameters` of BatchDeleteImage."""


class BatchDeleteImageResponse(_Shape):
    """`responseElements` of BatchDeleteImage: what ECR deleted (failures are left out: nothing changed)."""

    image_ids: list[ImageId] = Field(default_factory=list, max_length=1000)


class BatchDeleteImageDetail(_Detail):
    """A BatchDeleteImage record: the tags (and digests) it removed."""

    event_name: Literal["BatchDeleteImage"]
    request_parameters: BatchDeleteImageRequest
    response_elements: BatchDeleteImageResponse | None = None


# --- settings ------------------------------------------------------------------------------------------


class RepositoryRequest(_RepositoryCall, _MutabilityFields):
    """`requestParameters` of PutImageTagMutability and CreateRepository."""


class RepositoryFields(_MutabilityFields):
    """A repository as ECR answers: `responseElements` of PutImageTagMutability, `.repository` of CreateRepository."""

    registry_id: str | None = None

    _registry = field_validator("registry_id")(_registry_id)


class CreateRepositoryResponse(_Shape):
    """`responseElements` of CreateRepository."""

    repository: RepositoryFields


class PutImageTagMutabilityDetail(_Detail):
    """A PutImageTagMutability record: the repository's new setting (the previous one is not in it)."""

    event_name: Literal["PutImageTagMutability"]
    request_parameters: RepositoryRequest
    response_elements: RepositoryFields | None = None

    @model_validator(mode="after")
    def _setting_known(self) -> PutImageTagMutabilityDetail:
        if self.error_code is None and self.request_parameters.setting() is None:
            raise ValueError("requestParameters.imageTagMutability is required for a successful PutImageTagMutability")
        return self


class CreateRepositoryDetail(_Detail):
    """A CreateRepository record; without a mutability in the request, ECR creates the repository MUTABLE."""

    event_name: Literal["CreateRepository"]
    request_parameters: RepositoryRequest
    response_elements: CreateRepositoryResponse | None = None


class TemplatePrefix(_Shape):
    """`requestParameters` of DeleteRepositoryCreationTemplate: the template's prefix."""

    prefix: str = Field(max_length=256)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX_RE.fullmatch(value):
            raise ValueError("must be a repository creation template prefix (a repository path prefix, or ROOT)")
        return value


class TemplateRequest(TemplatePrefix, _MutabilityFields):
    """`requestParameters` of Create/UpdateRepositoryCreationTemplate."""


class TemplateFields(_MutabilityFields):
    """`responseElements.repositoryCreationTemplate`."""

    prefix: str | None = Field(default=None, max_length=256)


class TemplateResponse(_Shape):
    """`responseElements` of Create/UpdateRepositoryCreationTemplate."""

    registry_id: str | None = None
    repository_creation_template: TemplateFields | None = None

    _registry = field_validator("registry_id")(_registry_id)


class CreationTemplateDetail(_Detail):
    """A Create/UpdateRepositoryCreationTemplate record (templates without a mutability are MUTABLE)."""

    event_name: Literal["CreateRepositoryCreationTemplate", "UpdateRepositoryCreationTemplate"]
    request_parameters: TemplateRequest
    response_elements: TemplateResponse | None = None


class DeletedTemplateDetail(_Detail):
    """A DeleteRepositoryCreationTemplate record: ECR answers with the deleted template, its setting included
    (API reference, DeleteRepositoryCreationTemplate, Response Syntax). Repositories ECR then creates under
    the prefix get a broader template's settings or ECR's default, MUTABLE."""

    event_name: Literal["DeleteRepositoryCreationTemplate"]
    request_parameters: TemplatePrefix
    response_elements: TemplateResponse | None = None


EcrApiCallDetail = Annotated[
    PutImageDetail
    | BatchDeleteImageDetail
    | PutImageTagMutabilityDetail
    | CreateRepositoryDetail
    | CreationTemplateDetail
    | DeletedTemplateDetail,
    Field(discriminator="event_name"),
]


class EcrApiCallEvent(EcrEventMixin, EventBridgeModel):
    """An EventBridge event with `source: aws.ecr` and `detail-type: AWS API Call via CloudTrail`."""

    source: Literal["aws.ecr"]
    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    detail: EcrApiCallDetail

    def to_fact(self) -> SettingsChange | CallsIdentified | IgnoredEvent:
        """What the call did, or why it is ignored."""
        detail = self.detail
        if detail.error_code is not None:
            return IgnoredEvent(self.id, f"{detail.event_name} failed ({detail.error_code[:80]}): nothing changed")
        if isinstance(detail, PutImageDetail):
            return self._pushed(detail)
        if isinstance(detail, BatchDeleteImageDetail):
            return self._deleted(detail)
        if isinstance(detail, DeletedTemplateDetail):
            return self._template_deleted(detail)
        return self._settings(detail)

    def _template_deleted(self, detail: DeletedTemplateDetail) -> SettingsChange:
        response = detail.response_elements
        registry_id = response.registry_id if response else None
        deleted = response.repository_creation_template if response else None
        return SettingsChange(
            subject=SettingsSubject.CREATION_TEMPLATE,
            registry=self._registry(registry_id),
            name=detail.request_parameters.prefix,
            # What ECR applies without the template, unless a broader one matches (judged the safe way).
            setting=ProtectionSetting(TagMutability.MUTABLE),
            created=False,
            operation=detail.event_name,
            source=self._source(registry_id),
            actor=detail.actor(),
            deleted=True,
            # A template without a mutability in ECR's answer is MUTABLE; no answer at all: unknown.
            replaced=(deleted.setting() or ProtectionSetting(TagMutability.MUTABLE)) if deleted else None,
        )

    def _registry(self, registry_id: str | None) -> str:
        # The registry named in the call (a push into another account's registry) else the caller's account.
        return ecr_registry(registry_id or self.account, self.detail.aws_region)

    def _source(self, registry_id: str | None) -> SourceEvent:
        # CloudTrail's own id and time: duplicates of one record share them, whatever EventBridge's envelope
        # says. The account is the registry's (the alert's `account`), which a call may name besides its own.
        detail = self.detail
        return SourceEvent(detail.event_id, detail.event_time, registry_id or self.account, detail.aws_region)

    def _pushed(self, detail: PutImageDetail) -> CallsIdentified | IgnoredEvent:
        request = detail.request_parameters
        response = detail.response_elements
        tag = (response.image.image_id.image_tag if response else None) or request.image_tag
        if not tag:
            return IgnoredEvent(self.id, "untagged PutImage: no tag history to name its pusher on")
        if not is_valid_tag(tag):
            return IgnoredEvent(self.id, f"tag {tag[:80]!r} is not a tag the ledger can key")
        registry_id = (response.image.registry_id if response else None) or request.registry_id
        image = ImageName(self._registry(registry_id), request.repository_name)
        assert detail.digest is not None
        report = ActorReport(TagAction.PUSH, TagRef(image, tag), detail.digest, detail.actor())
        return CallsIdentified(detail.event_id, (report,))

    def _deleted(self, detail: BatchDeleteImageDetail) -> CallsIdentified | IgnoredEvent:
        request = detail.request_parameters
        image = ImageName(self._registry(request.registry_id), request.repository_name)
        deleted = detail.response_elements.image_ids if detail.response_elements else []
        reports = tuple(
            ActorReport(TagAction.DELETE, TagRef(image, item.image_tag), item.image_digest, detail.actor())
            for item in deleted
            if item.image_tag and item.image_digest and is_valid_tag(item.image_tag)
        )
        # A delete by digest removes the image and all its tags; the response's identifier for it may carry the
        # digest alone (the API reference documents only the tag-delete example), so the tags come from the
        # ledger's record of the digest.
        by_digest = tuple(
            DigestDeleted(image, digest, detail.actor())
            for digest in dict.fromkeys(
                item.image_digest for item in deleted if item.image_digest and not item.image_tag
            )
        )
        if not reports and not by_digest:
            return IgnoredEvent(self.id, "BatchDeleteImage deleted nothing (failures only)")
        return CallsIdentified(detail.event_id, reports, by_digest)

    def _settings(
        self, detail: PutImageTagMutabilityDetail | CreateRepositoryDetail | CreationTemplateDetail
    ) -> SettingsChange:
        request: _MutabilityFields = detail.request_parameters
        answered: _MutabilityFields | None
        if isinstance(detail, CreationTemplateDetail):
            response = detail.response_elements
            answered = response.repository_creation_template if response else None
            registry_id = response.registry_id if response else None
            subject, name = SettingsSubject.CREATION_TEMPLATE, detail.request_parameters.prefix
        else:
            repository = detail.response_elements
            answered = repository.repository if isinstance(repository, CreateRepositoryResponse) else repository
            registry_id = (answered.registry_id if isinstance(answered, RepositoryFields) else None) or (
                detail.request_parameters.registry_id
            )
            subject, name = SettingsSubject.REPOSITORY, detail.request_parameters.repository_name
        # ECR's answer states the setting in force; a request that names none leaves ECR's default, MUTABLE.
        setting = (
            (answered.setting() if answered is not None else None)
            or request.setting()
            or ProtectionSetting(TagMutability.MUTABLE)
        )
        return SettingsChange(
            subject=subject,
            registry=self._registry(registry_id),
            name=name,
            setting=setting,
            created=detail.event_name in ("CreateRepository", "CreateRepositoryCreationTemplate"),
            operation=detail.event_name,
            source=self._source(registry_id),
            actor=detail.actor(),
        )
