"""Scan events: ECR basic scanning (`ECR Image Scan`) and Amazon Inspector (`Inspector2 Scan` summaries and,
in `events.findings`, `Inspector2 Finding`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    NonNegativeInt,
    PrivateAttr,
    RootModel,
    Tag,
    field_validator,
    model_validator,
)

from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.findings import FindingReported
from tagwarden.domain.images import (
    ImageName,
    ecr_registry,
    is_valid_tag,
    validate_digest,
    validate_repository,
    validate_tag,
)
from tagwarden.domain.scans import REPORTED_TOTAL_KEY, ScanCompleted, ScanStatus, normalise_counts
from tagwarden.domain.sources import SourceEvent
from tagwarden.events.ecr import EcrEventMixin
from tagwarden.events.findings import InspectorFindingEvent
from tagwarden.observability import logger, metrics

_REPOSITORY_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:ecr:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):repository/(?P<name>.+)"
)
MAX_TAGS = 1000
MAX_SEVERITY_LABELS = 20
MAX_REPORTED_TAGS = 10

# Bounded: no scanner reports a billion findings on one image, and the ledger stores counts as DynamoDB
# numbers (38 digits): an absurd count is a validation error, not a crash.
MAX_FINDING_COUNT = 10**9
SeverityCounts = Annotated[
    dict[Annotated[str, Field(max_length=32)], Annotated[NonNegativeInt, Field(le=MAX_FINDING_COUNT)]],
    Field(max_length=MAX_SEVERITY_LABELS),
]


class _ScanDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    scan_status: str = Field(alias="scan-status", max_length=64)
    image_digest: str | None = Field(default=None, alias="image-digest", max_length=200)
    image_tags: list[str] = Field(default_factory=list, alias="image-tags", max_length=MAX_TAGS)
    finding_severity_counts: SeverityCounts = Field(default_factory=dict, alias="finding-severity-counts")

    @field_validator("image_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        return validate_digest(value) if value else None

    # Tags the ledger cannot store: ECR accepts tags of up to 300 characters, the OCI grammar 128.
    _unstorable_tags: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _set_aside_unstorable_tags(cls, data: Any, handler: ModelWrapValidatorHandler[_ScanDetail]) -> _ScanDetail:
        # A tag the ledger cannot key is skipped, not a reason to lose the scan: the digest's scan is
        # recorded and reaches every tag the ledger does know through the digest.
        unstorable: list[str] = []
        if isinstance(data, dict) and isinstance(data.get("image-tags"), list):
            kept = []
            for tag in data["image-tags"]:
                if isinstance(tag, str) and tag and not is_valid_tag(tag):
                    unstorable.append(tag)
                else:
                    kept.append(tag)
            data = {**data, "image-tags": kept}
        detail = handler(data)
        detail._unstorable_tags = tuple(unstorable)
        return detail

    @field_validator("image_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [validate_tag(tag) for tag in value if tag]

    def report_unstorable_tags(self, event_id: str) -> None:
        """Warn about, and count, the tags of this scan event that the ledger cannot store."""
        if self._unstorable_tags:
            metrics.add_metric(name="UnstorableScanTags", unit="Count", value=len(self._unstorable_tags))
            logger.warning(
                "scan event tags skipped: not valid image tags (the ledger keys tags of up to 128 characters)",
                extra={
                    "event_id": event_id,
                    "tags": [tag[:80] for tag in self._unstorable_tags[:MAX_REPORTED_TAGS]],
                    "skipped": len(self._unstorable_tags),
                },
            )


class EcrImageScanDetail(_ScanDetail):
    """`detail` of ECR basic scanning's event; the counts list only severities that have findings."""

    repository_name: str = Field(alias="repository-name", max_length=256)

    @field_validator("repository_name")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)


class InspectorScanDetail(_ScanDetail):
    """`detail` of Inspector's scan event; only ECR image scans carry a repository ARN and a digest."""

    repository_name: str | None = Field(default=None, alias="repository-name", max_length=400)

    @field_validator("repository_name")
    @classmethod
    def _repository_arn(cls, value: str | None) -> str | None:
        if value is not None:
            match = _REPOSITORY_ARN_RE.fullmatch(value)
            if match is None:
                raise ValueError("must be an ECR repository ARN (arn:aws:ecr:<region>:<account>:repository/<name>)")
            validate_repository(match["name"])
        return value


def _status(scan_status: str) -> ScanStatus | None:
    # ECR sends COMPLETE/FAILED; Inspector documents INITIAL_SCAN_COMPLETE (and may add other *_COMPLETE).
    if scan_status.endswith("COMPLETE"):
        return ScanStatus.COMPLETE
    if scan_status == "FAILED":
        return ScanStatus.FAILED
    return None


class EcrImageScanEvent(EcrEventMixin, EventBridgeModel):
    """ECR basic scanning finished for one image."""

    source: Literal["aws.ecr"]
    detail_type: Literal["ECR Image Scan"] = Field(alias="detail-type")
    detail: EcrImageScanDetail

    def to_fact(self) -> ScanCompleted | IgnoredEvent:
        """The scan report, or why it is ignored."""
        self.detail.report_unstorable_tags(self.id)
        status = _status(self.detail.scan_status)
        if status is None or self.detail.image_digest is None:
            return IgnoredEvent(self.id, f"scan-status {self.detail.scan_status!r} or no image-digest")
        return ScanCompleted(
            image=ImageName(ecr_registry(self.account, self.region), self.detail.repository_name),
            digest=self.detail.image_digest,
            tags=tuple(self.detail.image_tags),
            scanner="ecr-basic",
            status=status,
            finding_counts=normalise_counts(self.detail.finding_severity_counts),
            source=SourceEvent(self.id, self.time, self.account, self.region),
        )


class InspectorScanEvent(EcrEventMixin, EventBridgeModel):
    """Amazon Inspector finished a scan: of an ECR image, or of something else (EC2, Lambda) to skip."""

    source: Literal["aws.inspector2"]
    detail_type: Literal["Inspector2 Scan"] = Field(alias="detail-type")
    detail: InspectorScanDetail

    def to_fact(self) -> ScanCompleted | IgnoredEvent:
        """The scan report of an ECR image, or why it is ignored."""
        detail = self.detail
        detail.report_unstorable_tags(self.id)
        if detail.repository_name is None or detail.image_digest is None:
            return IgnoredEvent(self.id, "Inspector scan of a resource that is not an ECR image")
        status = _status(detail.scan_status)
        if status is None:
            return IgnoredEvent(self.id, f"scan-status {detail.scan_status!r}")
        match = _REPOSITORY_ARN_RE.fullmatch(detail.repository_name)
        assert match is not None  # checked by the field validator
        # The repository may live in a member account while a delegated administrator receives the event.
        image = ImageName(ecr_registry(match["account"], match["region"]), match["name"])
        return ScanCompleted(
            image=image,
            digest=detail.image_digest,
            tags=tuple(detail.image_tags),
            scanner="inspector",
            status=status,
            finding_counts=normalise_counts(detail.finding_severity_counts),
            source=SourceEvent(self.id, self.time, match["account"], match["region"]),
            reported_total=detail.finding_severity_counts.get(REPORTED_TOTAL_KEY),
        )


def _scan_event_kind(event: object) -> str | None:
    # Both Inspector events share `source`: the detail-type tells a scan summary from a finding.
    if isinstance(event, dict):
        kind = event.get("detail-type")
        return kind if isinstance(kind, str) else None
    return getattr(event, "detail_type", None)


class ScanEvent(
    RootModel[
        Annotated[
            Annotated[EcrImageScanEvent, Tag("ECR Image Scan")]
            | Annotated[InspectorScanEvent, Tag("Inspector2 Scan")]
            | Annotated[InspectorFindingEvent, Tag("Inspector2 Finding")],
            Discriminator(_scan_event_kind),
        ]
    ]
):
    """Either scanner's event (ECR's scan, Inspector's scan summary or one of its findings), by detail-type."""

    def to_fact(self) -> ScanCompleted | FindingReported | IgnoredEvent:
        """The scan report or finding, or why it is ignored."""
        return self.root.to_fact()
