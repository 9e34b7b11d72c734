"""Decisions for tag actions: current events move the pointer, late ones only fill in history."""

from __future__ import annotations

from datetime import UTC, datetime

from tagwarden.domain.alerts import ALERT_SCHEMA, AlertType
from tagwarden.domain.images import ImageName
from tagwarden.domain.rules import Neighbours, decide_current, decide_late, is_late
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict
from tagwarden.domain.severity import Severity
from tagwarden.domain.sources import SourceEvent
from tagwarden.domain.tag_policy import TagPolicy
from tagwarden.domain.tags import ImageAction, TagAction, TagMove, TagPointer, TagRef

IMAGE = ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api")
A, B, C = ("sha256:" + c * 64 for c in "abc")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = TagPolicy()


def source(minute: int, event_id: str | None = None) -> SourceEvent:
    return SourceEvent(event_id or f"evt-{minute}", datetime(2026, 11, 20, 10, minute, tzinfo=UTC), "111122223333")


def action(kind: TagAction, digest: str, minute: int, tag: str = "latest") -> ImageAction:
    return ImageAction(kind, IMAGE, digest, tag, source(minute))


def pointer_at(digest: str | None, minute: int, last: str | None = None, scan: ScanState | None = None) -> TagPointer:
    return TagPointer(digest, last or digest or A, source(minute).key, version=3, scan=scan)


def scan(verdict: Verdict = Verdict.PASS) -> ScanState:
    return ScanState(ScanStatus.COMPLETE, datetime(2026, 11, 20, 9, 0, tzinfo=UTC), "ecr-basic", verdict)


def test_first_push_creates_the_pointer_without_alert() -> None:
    push = action(TagAction.PUSH, A, 1)
    decision = decide_current(push, push.tag_ref, None, {}, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.pointer == TagPointer(A, A, push.source.key, 1)
    assert decision.move.previous_digest is None
    assert decision.alerts == ()


def test_push_of_the_same_digest_is_not_an_overwrite() -> None:
    push = action(TagAction.PUSH, A, 2)
    decision = decide_current(push, push.tag_ref, pointer_at(A, 1), {}, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.alerts == ()
    assert decision.pointer is not None and decision.pointer.version == 4


def test_overwrite_alerts_with_the_schema_fields() -> None:
    push = action(TagAction.PUSH, B, 2, tag="main")
    decision = decide_current(push, push.tag_ref, pointer_at(A, 1), {}, POLICY, NOW)  # type: ignore[arg-type]
    (alert,) = decision.alerts
    assert alert.type is AlertType.TAG_OVERWRITTEN
    assert alert.severity is Severity.MEDIUM
    assert (alert.previous_digest, alert.current_digest, alert.scanned_digest) == (A, B, None)
    assert alert.tag == "main" and alert.repository == "shop/api" and alert.evidence == ("evt-2",)
    assert alert.to_json().startswith(f'{{"schema":"{ALERT_SCHEMA}"')
    assert len(alert.subject) <= 100


def test_alert_id_is_stable_for_the_same_finding() -> None:
    push = action(TagAction.PUSH, B, 2)
    first = decide_current(push, push.tag_ref, pointer_at(A, 1), {}, POLICY, NOW)  # type: ignore[arg-type]
    again = decide_current(push, push.tag_ref, pointer_at(A, 1), {}, POLICY, datetime.now(UTC))  # type: ignore[arg-type]
    assert first.alerts[0].alert_id == again.alerts[0].alert_id


def test_protected_tag_overwrite_is_high_and_says_so() -> None:
    push = action(TagAction.PUSH, B, 2, tag="1.4.0")
    (alert,) = decide_current(push, push.tag_ref, pointer_at(A, 1), {}, POLICY, NOW).alerts  # type: ignore[arg-type]
    assert alert.severity is Severity.HIGH
    assert "protected" in alert.summary


def test_move_away_from_a_scanned_digest_is_tag_moved_after_scan() -> None:
    push = action(TagAction.PUSH, B, 2, tag="1.4.0")
    pointer = pointer_at(A, 1, scan=scan())
    (alert,) = decide_current(push, push.tag_ref, pointer, {}, POLICY, NOW).alerts  # type: ignore[arg-type]
    assert (alert.type, alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert (alert.scanned_digest, alert.scanned_at) == (A, scan().scanned_at)


def test_delete_keeps_the_last_digest_and_a_later_push_is_an_overwrite() -> None:
    delete = action(TagAction.DELETE, A, 2)
    tag: TagRef = delete.tag_ref  # type: ignore[assignment]
    deleted = decide_current(delete, tag, pointer_at(A, 1), {}, POLICY, NOW)
    assert deleted.pointer is not None and deleted.pointer.deleted and deleted.pointer.last_digest == A
    assert deleted.alerts == ()
    push = action(TagAction.PUSH, B, 3)
    (alert,) = decide_current(push, tag, deleted.pointer, {}, POLICY, NOW).alerts
    assert alert.previous_digest == A and "deleted and pushed again" in alert.summary


def test_older_event_is_late() -> None:
    assert is_late(action(TagAction.PUSH, B, 1), pointer_at(A, 5))
    assert not is_late(action(TagAction.PUSH, B, 6), pointer_at(A, 5))
    assert not is_late(action(TagAction.PUSH, B, 6), None)


def test_late_push_alerts_the_move_from_its_predecessor() -> None:
    late = action(TagAction.PUSH, B, 2)
    before = TagMove(TagAction.PUSH, A, None, source(1))
    after = TagMove(TagAction.PUSH, C, A, source(3), alerted=True)
    decision = decide_late(late, late.tag_ref, Neighbours(before, after), {}, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.pointer is None and decision.move.late
    assert [(a.previous_digest, a.current_digest) for a in decision.alerts] == [(A, B)]


def test_late_push_reveals_a_move_recorded_as_a_first_push() -> None:
    # B (10:03) arrived first and looked like the tag's first push; A (10:01) arrives late.
    late = action(TagAction.PUSH, A, 1)
    after = TagMove(TagAction.PUSH, B, None, source(3))
    decision = decide_late(late, late.tag_ref, Neighbours(None, after), {}, POLICY, NOW)  # type: ignore[arg-type]
    (alert,) = decision.alerts
    assert (alert.previous_digest, alert.current_digest) == (A, B)
    assert alert.evidence == ("evt-3", "evt-1")


def test_late_duplicate_content_raises_nothing() -> None:
    late = action(TagAction.PUSH, A, 2)
    before = TagMove(TagAction.PUSH, A, None, source(1))
    after = TagMove(TagAction.PUSH, A, A, source(3))
    decision = decide_late(late, late.tag_ref, Neighbours(before, after), {}, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.alerts == () and decision.move.previous_digest == A


def test_a_late_entry_shares_the_alert_of_a_successor_with_its_content() -> None:
    # P(A) -> S(B) was alerted; X(B) arrives late between them: that alert covers the change into B.
    late = action(TagAction.PUSH, B, 2)
    before = TagMove(TagAction.PUSH, A, None, source(1))
    after = TagMove(TagAction.PUSH, B, A, source(3), alerted=True)
    decision = decide_late(late, late.tag_ref, Neighbours(before, after), {}, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.alerts == ()
    assert decision.move.alerted
    assert decision.relinked_successor is not None
    assert decision.relinked_successor.alerted
    # Then Y(C) lands between X and S: B->C is new; C->B into S is what S's alert already said (A->B).
    y = action(TagAction.PUSH, C, 2)
    y = ImageAction(y.action, y.image, y.digest, y.tag, SourceEvent("evt-2b", y.source.event_time.replace(second=30)))
    again = decide_late(y, y.tag_ref, Neighbours(decision.move, decision.relinked_successor), {}, POLICY, NOW)  # type: ignore[arg-type]
    assert [(a.previous_digest, a.current_digest) for a in again.alerts] == [(B, C)]
