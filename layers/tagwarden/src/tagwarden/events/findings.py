"""Amazon Inspector's `Inspector2 Finding` events: one finding on one resource, created, updated or closed.

Only findings on ECR images (`resources[].type: AWS_ECR_CONTAINER_IMAGE`) are ours; findings on EC2
instances, Lambda functions or code repositories are ignored. The image is read from the resource's
`details.awsEcrContainerImage` (`registry`, `repositoryName`, `imageHash`, `imageTags`), its region from the
resource ARN. Inspector's own timestamps inside `detail` are not ISO-8601 and have changed format over
time, so events are ordered by the envelope's `time` (and id), like every other event.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.findings import FindingReported, FindingStatus
from tagwarden.domain.images import ImageName, ecr_registry, is_valid_tag, validate_digest, validate_repository
from tagwarden.domain.scans import FindingSeverity, normalise_counts
from tagwarden.domain.sources import SourceEvent
from tagwarden.events.ecr import EcrEventMixin
from tagwarden.observability import logger, metrics

ECR_IMAGE_RESOURCE = "AWS_ECR_CONTAINER_IMAGE"
_FINDING_ARN_RE = re.compile(r"arn:aws[a-z-]*:inspector2:[a-z0-9-]+:[0-9]{12}:finding/[A-Za-z0-9_-]{1,128}")
_IMAGE_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:ecr:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):repository/.+/sha256:[0-9a-f]{64}"
)
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
MAX_RESOURCES = 20
MAX_TAGS = 1000


class EcrContainerImage(BaseModel):
    """`details.awsEcrContainerImage`: the scanned image (per platform: `imageHash` is a manifest digest)."""

    model_config = ConfigDict(frozen=True)

    registry: str = Field(max_length=12)
    repository_name: str = Field(alias="repositoryName", max_length=256)
    image_hash: str = Field(alias="imageHash", max_length=200)
    image_tags: list[str] = Field(default_factory=list, alias="imageTags", max_length=MAX_TAGS)

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        if not _ACCOUNT_RE.fullmatch(value):
            raise ValueError("must be the 12-digit account id of the ECR registry")
        return value

    @field_validator("repository_name")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("image_hash")
    @classmethod
    def _digest(cls, value: str) -> str:
        return validate_digest(value)

    @field_validator("image_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        # A tag the ledger cannot key (ECR accepts 300 characters) is skipped, never a reason to lose the
        # finding: it reaches the digest, and through it every tag the ledger knows.
        unstorable = [tag for tag in value if tag and not is_valid_tag(tag)]
        if unstorable:
            metrics.add_metric(name="UnstorableScanTags", unit="Count", value=len(unstorable))
            logger.warning(
                "finding event tags skipped: not valid image tags", extra={"tags": [t[:80] for t in unstorable[:10]]}
            )
        return [tag for tag in value if tag and is_valid_tag(tag)]


class FindingResourceDetails(BaseModel):
    """`resources[].details`: one key per resource type; only the ECR image's is read."""

    model_config = ConfigDict(frozen=True)

    aws_ecr_container_image: EcrContainerImage | None = Field(default=None, alias="awsEcrContainerImage")


class FindingResource(BaseModel):
    """One resource a finding is about (Inspector lists one)."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(max_length=64)
    id: str = Field(default="", max_length=600)
    details: FindingResourceDetails | None = None


class InspectorFindingDetail(BaseModel):
    """`detail` of an `Inspector2 Finding` event: the fields that judge an image (the rest is ignored)."""

    model_config = ConfigDict(frozen=True)

    finding_arn: str = Field(alias="findingArn", max_length=400)
    severity: str = Field(max_length=32)
    status: str = Field(max_length=32)
    title: str = Field(default="", max_length=1024)
    resources: list[FindingResource] = Field(max_length=MAX_RESOURCES)

    @field_validator("finding_arn")
    @classmethod
    def _finding_arn(cls, value: str) -> str:
        if not _FINDING_ARN_RE.fullmatch(value):
            raise ValueError("must be an Inspector finding ARN (arn:aws:inspector2:<region>:<account>:finding/<id>)")
        return value


class InspectorFindingEvent(EcrEventMixin, EventBridgeModel):
    """Amazon Inspector created, updated or closed a finding: on an ECR image, or on something else to skip."""

    source: Literal["aws.inspector2"]
    detail_type: Literal["Inspector2 Finding"] = Field(alias="detail-type")
    detail: InspectorFindingDetail

    def to_fact(self) -> FindingReported | IgnoredEvent:
        """The finding on an ECR image, or why it is ignored."""
        detail = self.detail
        resource = next((r for r in detail.resources if r.type == ECR_IMAGE_RESOURCE), None)
        image = resource.details.aws_ecr_container_image if resource and resource.details else None
        if resource is None or image is None:
            return IgnoredEvent(self.id, "Inspector finding on a resource that is not an ECR image")
        if detail.status not in FindingStatus.__members__:
            return IgnoredEvent(self.id, f"finding status {detail.status!r}")
        # The resource ARN names the image's region; the registry field its account (which may be a member
        # account while a delegated administrator receives the event).
        match = _IMAGE_ARN_RE.fullmatch(resource.id)
        region = match["region"] if match is not None else self.region
        # One vocabulary with scan counts: UNTRIAGED (and any label Inspector may add) is UNDEFINED.
        severity = next(iter(normalise_counts({detail.severity: 1})))
        return FindingReported(
            image=ImageName(ecr_registry(image.registry, region), image.repository_name),
            digest=image.image_hash,
            finding_arn=detail.finding_arn,
            severity=FindingSeverity(severity),
            status=FindingStatus(detail.status),
            tags=tuple(image.image_tags),
            source=SourceEvent(self.id, self.time, image.registry, region),
            title=detail.title,
        )
