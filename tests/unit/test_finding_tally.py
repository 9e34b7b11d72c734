"""Property-based: Inspector finding events delivered in any order, any number of times, tally the same."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tagwarden.domain.findings import FindingStatus, FindingTally, KnownFinding
from tagwarden.domain.scans import FindingSeverity

RATED = ("CRITICAL", "HIGH", "MEDIUM")  # what Inspector's scan summary breaks out
SEVERITIES = st.sampled_from([*RATED, "LOW", "INFORMATIONAL", "UNDEFINED"]).map(FindingSeverity)
# Each finding: its severity, and the statuses of its later events (the first one, at scan time, is ACTIVE).
FINDINGS = st.lists(
    st.tuples(SEVERITIES, st.lists(st.sampled_from(list(FindingStatus)), max_size=3)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300)
@given(findings=FINDINGS, data=st.data())
def test_any_delivery_order_with_repeats_ends_with_the_newest_state_of_each_finding(
    findings: list[tuple[FindingSeverity, list[FindingStatus]]], data: st.DataObject
) -> None:
    # Given a summary that counted every finding active at scan time
    summary: dict[str, int] = {}
    for severity, _ in findings:
        if severity.value in RATED:
            summary[severity.value] = summary.get(severity.value, 0) + 1
    unrated = sum(1 for severity, _ in findings if severity.value not in RATED)
    events = [
        (number, KnownFinding(severity, status, f"2026-11-2{step}T00:00:00.000000Z#{number:04d}"))
        for number, (severity, later) in enumerate(findings)
        for step, status in enumerate([FindingStatus.ACTIVE, *later])
    ]
    deliveries = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))

    # When the events are applied the way the scan recorder does (newer than the finding's state only)
    tally = FindingTally().with_summary(summary, unrated)
    known: dict[int, KnownFinding] = {}
    for number, event in deliveries:
        if event.newer_than(known.get(number)):
            tally = tally.with_finding(known.get(number), event)
            known[number] = event

    # Then the counts are exactly the findings whose newest event still counts (not SUPPRESSED), and nothing
    # is left unrated
    expected: dict[str, int] = {}
    for severity, later in findings:
        if ([FindingStatus.ACTIVE, *later])[-1].counts_against_the_image:
            expected[severity.value] = expected.get(severity.value, 0) + 1
    assert tally.counts() == expected
    assert tally.unresolved() == 0


@settings(max_examples=300)
@given(findings=st.lists(SEVERITIES, min_size=1, max_size=12), data=st.data())
def test_while_finding_events_are_in_flight_a_failing_summary_keeps_failing(
    findings: list[FindingSeverity], data: st.DataObject
) -> None:
    # Given a summary with a CRITICAL finding among others, all still active
    severities = [FindingSeverity.CRITICAL, *findings]
    summary: dict[str, int] = {}
    for severity in severities:
        if severity.value in RATED:
            summary[severity.value] = summary.get(severity.value, 0) + 1
    tally = FindingTally().with_summary(summary, sum(1 for s in severities if s.value not in RATED))

    # When any subset of their (ACTIVE) events has arrived, in any order
    arrived = data.draw(st.lists(st.sampled_from(list(enumerate(severities))), unique=True))
    for number, severity in arrived:
        tally = tally.with_finding(None, KnownFinding(severity, FindingStatus.ACTIVE, f"k{number}"))

    # Then the digest fails at CRITICAL, whichever events are still on their way
    assert tally.verdict(FindingSeverity.CRITICAL).value == "fail"
