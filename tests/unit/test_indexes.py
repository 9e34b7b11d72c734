"""The derived scan state of an image index, and same-second ties: plain functions, as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tagwarden.domain.images import ImageName
from tagwarden.domain.indexes import ImageIndex, IndexChild, derived_scan, is_index
from tagwarden.domain.rules import break_tie, same_second_tie
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tags import ImageAction, TagAction, TagPointer

AMD, ARM, ATT, IDX = ("sha256:" + c * 64 for c in "abcd")
INDEX = ImageIndex(
    IDX, (IndexChild(AMD, "linux/amd64"), IndexChild(ARM, "linux/arm64"), IndexChild(ATT, "unknown/unknown", True))
)
T = datetime(2026, 11, 20, 10, 0, 7, tzinfo=UTC)
IMAGE = ImageName("r.example", "shop/api")


def scan(verdict: Verdict | None, minute: int, **counts: int) -> ScanState:
    status = ScanStatus.FAILED if verdict is None else ScanStatus.COMPLETE
    at = T.replace(minute=minute)
    return ScanState(status, at, "ecr-basic", verdict, dict(counts), event_key=f"{at.isoformat()}#e{minute}")


def test_media_types_of_indexes() -> None:
    assert is_index("application/vnd.oci.image.index.v1+json")
    assert is_index("application/vnd.docker.distribution.manifest.list.v2+json")
    assert not is_index("application/vnd.oci.image.manifest.v1+json")
    assert not is_index(None)


def test_an_index_is_scanned_when_every_platform_is_and_attestations_do_not_count() -> None:
    derived = derived_scan(INDEX, {AMD: scan(Verdict.PASS, 1, LOW=3), ARM: scan(Verdict.PASS, 2, LOW=1, MEDIUM=2)})
    assert derived is not None
    assert (derived.status, derived.verdict, derived.finding_counts) == (
        ScanStatus.COMPLETE,
        Verdict.PASS,
        {"LOW": 3, "MEDIUM": 2},
    )
    assert (derived.scanned_at, derived.event_key) == (T.replace(minute=2), scan(Verdict.PASS, 2).event_key)


@pytest.mark.parametrize(
    ("scans", "expected"),
    [
        ({AMD: scan(Verdict.PASS, 1)}, None),  # arm64 not scanned yet
        ({AMD: scan(Verdict.PASS, 1), ATT: scan(Verdict.PASS, 3)}, None),  # an attestation is no platform
        ({AMD: scan(Verdict.PASS, 1), ARM: scan(Verdict.FAIL, 2, CRITICAL=1)}, (ScanStatus.COMPLETE, Verdict.FAIL)),
        ({AMD: scan(Verdict.PASS, 1), ARM: scan(None, 2)}, (ScanStatus.FAILED, None)),
    ],
)
def test_derived_states(scans: dict[str, ScanState], expected: tuple[ScanStatus, Verdict | None] | None) -> None:
    derived = derived_scan(INDEX, scans)
    assert ((derived.status, derived.verdict) if derived is not None else None) == expected


def test_an_index_without_platforms_is_never_scanned() -> None:
    assert (
        derived_scan(ImageIndex(IDX, (IndexChild(ATT, "unknown/unknown", True),)), {ATT: scan(Verdict.PASS, 1)}) is None
    )


def push(digest: str, event_id: str, action: TagAction = TagAction.PUSH) -> ImageAction:
    return ImageAction(action, IMAGE, digest, "main", SourceEvent(event_id, T))


def pointer_of(action: ImageAction) -> TagPointer:
    digest = action.digest if action.action is TagAction.PUSH else None
    return TagPointer(digest, action.digest, action.source.key, 1)


def test_same_second_ties() -> None:
    recorded = pointer_of(push(AMD, "m"))
    assert same_second_tie(push(ARM, "a"), recorded)
    assert not same_second_tie(push(AMD, "a"), recorded)  # same content: nothing to order
    later = ImageAction(TagAction.PUSH, IMAGE, ARM, "main", SourceEvent("a", T.replace(second=8)))
    assert not same_second_tie(later, recorded)
    assert same_second_tie(push(AMD, "z", TagAction.DELETE), recorded)


@pytest.mark.parametrize(
    ("event_id", "registry", "placed"),
    [
        ("a", ARM, "last"),  # sorts before the pointer, but ECR has it: it was applied last
        ("z", ARM, "natural"),  # sorts after and ECR has it: already in place
        ("z", AMD, "before"),  # sorts after, but ECR has the pointer's: it was applied first
        ("a", AMD, "natural"),  # sorts before and ECR has the pointer's: already in place
        ("a", "sha256:" + "e" * 64, "natural"),  # ECR has moved on: event order stands
        ("a", None, "natural"),
    ],
)
def test_break_tie(event_id: str, registry: str | None, placed: str) -> None:
    recorded = pointer_of(push(AMD, "m"))
    action = push(ARM, event_id)
    result = break_tie(action, recorded, registry)
    assert result.source.event_id == event_id and result.digest == ARM
    expected = {
        "last": action.source.last_in_its_second().key,
        "before": action.source.just_before_its_second().key,
        "natural": action.source.key,
    }[placed]
    assert result.source.key == expected
    if placed == "last":
        assert result.source.key > recorded.event_key
    if placed == "before":
        assert result.source.key < recorded.event_key


def test_a_delete_in_a_tie_is_newer_when_ecr_has_no_such_tag() -> None:
    recorded = pointer_of(push(AMD, "z"))
    delete = push(AMD, "a", TagAction.DELETE)
    assert break_tie(delete, recorded, None).source.key > recorded.event_key
