"""The admission decision table (domain.admission), on ledger views built by hand: no sockets, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tagwarden.domain.admission import (
    AdmissionPolicy,
    AdmissionSubject,
    AdmissionView,
    Decision,
    ImageSlot,
    Mode,
    Problem,
    decide,
    ledger_reads,
    words,
)
from tagwarden.domain.images import ImageName
from tagwarden.domain.refusals import Refusal
from tagwarden.domain.registry_scope import RegistryScope
from tagwarden.domain.scans import ScannedDigest, ScanState, ScanStatus, Verdict
from tagwarden.domain.tags import TagPointer, TagRef

ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
API = ImageName(ECR, "shop/api")
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
WHEN = datetime(2026, 11, 20, 9, 14, 52, tzinfo=UTC)
PASSING = ScanState(ScanStatus.COMPLETE, WHEN, "ecr-basic", Verdict.PASS, {"HIGH": 2}, "k1")
FAILING = ScanState(ScanStatus.COMPLETE, WHEN, "ecr-basic", Verdict.FAIL, {"CRITICAL": 1}, "k2")
UNDECIDED = ScanState(ScanStatus.COMPLETE, WHEN, "inspector", Verdict.UNDECIDED, {}, "k3")
FAILED_SCAN = ScanState(ScanStatus.FAILED, WHEN, "ecr-basic", None, {}, "k4")
POLICY = AdmissionPolicy(RegistryScope(), frozenset({"kube-system"}))


def pointer(digest: str | None, scan: ScanState | None, last_scanned: str | None = None) -> TagPointer:
    mark = ScannedDigest(last_scanned, WHEN) if last_scanned else None
    return TagPointer(digest, digest or A, "e1", 1, scan, mark)


VIEW = AdmissionView(
    pointers={
        TagRef(API, "latest"): pointer(A, PASSING),
        TagRef(API, "failing"): pointer(B, FAILING),
        TagRef(API, "undecided"): pointer(B, UNDECIDED),
        TagRef(API, "failed"): pointer(B, FAILED_SCAN),
        TagRef(API, "fresh"): pointer(B, None),
        TagRef(API, "moved"): pointer(B, None, last_scanned=A),
        TagRef(API, "deleted"): pointer(None, None),
        TagRef(API, "unknown"): None,
    },
    digests={(API, A): PASSING, (API, B): None},
)


def subject(
    *images: str | None, template: bool = False, namespace: str = "shop", pinnable: bool = True
) -> AdmissionSubject:
    slots = tuple(
        ImageSlot(f"/spec/containers/{n}/image", f"c{n}", image, template=template) for n, image in enumerate(images)
    )
    return AdmissionSubject(namespace, "Pod", "api-", "CREATE", slots, pinnable=pinnable, annotated=pinnable)


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (f"{ECR}/shop/api:failing", Refusal.FAILING_VERDICT),
        (f"{ECR}/shop/api:undecided", Refusal.UNDECIDED_VERDICT),
        (f"{ECR}/shop/api:failed", Refusal.SCAN_FAILED),
        (f"{ECR}/shop/api:fresh", Refusal.UNSCANNED),
        (f"{ECR}/shop/api:moved", Refusal.TAG_MOVED),
        (f"{ECR}/shop/api:deleted", Refusal.TAG_DELETED),
        (f"{ECR}/shop/api:unknown", Refusal.UNKNOWN_TAG),
        (f"{ECR}/shop/api@{B}", Refusal.UNSCANNED),
        (f"{ECR}/shop/api@sha256:{'c' * 64}", Refusal.UNKNOWN_DIGEST),
        (f"{ECR}/shop/api:latest@{B}", Refusal.UNSCANNED),
        (f"sha256:{'d' * 64}", Problem.LOCAL_IMAGE_ID),
        ("d" * 64, Problem.LOCAL_IMAGE_ID),
        (f"{ECR}/shop/api:bad tag", Problem.UNPARSEABLE),
        (None, Problem.UNPARSEABLE),
    ],
)
def test_each_problem_denies_in_enforce_and_warns_in_warn(image: str | None, problem: Problem | Refusal) -> None:
    enforced = decide(subject(image), VIEW, POLICY, Mode.ENFORCE)
    warned = decide(subject(image), VIEW, POLICY, Mode.WARN)

    assert not enforced.allowed and enforced.decisions[0].problem is problem
    assert enforced.decisions[0].decision is Decision.DENIED and words(problem) in enforced.message
    assert warned.allowed and warned.decisions[0].decision is Decision.WARNED and warned.pins == ()
    assert words(problem) in warned.warnings[0] and len(warned.warnings[0]) <= 256


def test_a_passing_tag_is_pinned_in_the_form_it_was_written() -> None:
    fips = "111122223333.dkr.ecr-fips.eu-west-1.amazonaws.com/shop/api:latest"

    verdict = decide(subject(f"{ECR}/shop/api:latest", fips), VIEW, POLICY, Mode.ENFORCE)

    assert verdict.allowed
    assert verdict.pins == (
        ("/spec/containers/0/image", f"{ECR}/shop/api:latest@{A}"),
        ("/spec/containers/1/image", f"{fips}@{A}"),
    )
    assert verdict.originals == {"/spec/containers/0/image": f"{ECR}/shop/api:latest", "/spec/containers/1/image": fips}


def test_a_digest_is_verified_not_trusted_and_wins_over_its_tag() -> None:
    verdict = decide(subject(f"{ECR}/shop/api:failing@{A}"), VIEW, POLICY, Mode.ENFORCE)

    assert verdict.allowed and verdict.pins == () and verdict.decisions[0].decision is Decision.VERIFIED


def test_a_tag_moved_after_its_scan_says_which_digest_was_scanned() -> None:
    verdict = decide(subject(f"{ECR}/shop/api:moved"), VIEW, POLICY, Mode.ENFORCE)

    assert f"{API}@{A}" in verdict.message


def test_an_unreadable_ledger_denies_in_enforce_and_warns_in_warn_without_pinning() -> None:
    enforced = decide(subject(f"{ECR}/shop/api:latest"), None, POLICY, Mode.ENFORCE)
    warned = decide(subject(f"{ECR}/shop/api:latest"), None, POLICY, Mode.WARN)

    assert not enforced.allowed and enforced.decisions[0].problem is Problem.LEDGER_UNAVAILABLE
    assert warned.allowed and warned.pins == () and "ledger unavailable" in warned.warnings[0]


def test_templates_are_warned_never_denied_and_pinned_only_when_pinnable() -> None:
    failing = decide(subject(f"{ECR}/shop/api:failing", template=True, pinnable=False), VIEW, POLICY, Mode.ENFORCE)
    passing = decide(subject(f"{ECR}/shop/api:latest", template=True, pinnable=False), VIEW, POLICY, Mode.ENFORCE)
    pinned = decide(subject(f"{ECR}/shop/api:latest", template=True), VIEW, POLICY, Mode.ENFORCE)

    assert failing.allowed and "pod template" in failing.warnings[0]
    assert passing.allowed and passing.pins == () and passing.warnings == ()
    assert pinned.pins == (("/spec/containers/0/image", f"{ECR}/shop/api:latest@{A}"),)


def test_unjudged_registries_exempt_namespaces_and_unchanged_images_are_left_alone() -> None:
    other = subject("docker.io/library/nginx:1.27")
    exempt = subject(f"{ECR}/shop/api:failing", namespace="kube-system")
    unchanged = AdmissionSubject(
        "shop",
        "Pod",
        "api",
        "UPDATE",
        (ImageSlot("/spec/containers/0/image", "api", f"{ECR}/shop/api:failing", changed=False),),
        True,
        True,
    )

    assert decide(other, VIEW, POLICY, Mode.ENFORCE).decisions[0].decision is Decision.SKIPPED
    assert decide(exempt, VIEW, POLICY, Mode.ENFORCE).allowed
    assert decide(unchanged, VIEW, POLICY, Mode.ENFORCE).allowed
    assert ledger_reads(other, POLICY.scope) == (set(), set())


def test_claimed_originals_are_kept_only_where_the_image_is_that_reference_pinned() -> None:
    pinned = f"{ECR}/shop/api:latest@{A}"
    claims = {
        "/spec/containers/0/image": f"{ECR}/shop/api:latest",  # true: the image is this, pinned
        "/spec/containers/1/image": f"{ECR}/shop/api:failing",  # forged: the image is not that
        "/spec/volumes/0": "anything",  # forged: no image there
    }
    slots = (
        ImageSlot("/spec/containers/0/image", "api", pinned),
        ImageSlot("/spec/containers/1/image", "side", f"{ECR}/shop/api@{A}"),
    )
    reinvoked = AdmissionSubject("shop", "Pod", "api-", "CREATE", slots, True, True, frozenset(), claims)

    verdict = decide(reinvoked, VIEW, POLICY, Mode.ENFORCE)

    assert verdict.pins == ()
    assert verdict.originals == {"/spec/containers/0/image": f"{ECR}/shop/api:latest"}


def test_one_read_covers_each_distinct_tag_and_digest_once() -> None:
    tags, digests = ledger_reads(
        subject(f"{ECR}/shop/api:latest", f"{ECR}/shop/api:latest", f"{ECR}/shop/api:x@{A}", "nginx"), POLICY.scope
    )

    assert tags == {TagRef(API, "latest")} and digests == {(API, A)}


def test_a_template_warning_says_what_happens_to_its_pods_in_this_namespaces_mode() -> None:
    failing = subject(f"{ECR}/shop/api:failing", template=True, pinnable=False)
    [enforce] = decide(failing, VIEW, POLICY, Mode.ENFORCE).warnings
    [warn] = decide(failing, VIEW, POLICY, Mode.WARN).warnings

    assert enforce.startswith("tagwarden: pod template container c0") and enforce.endswith(
        "its pods will be denied here"
    )
    assert warn.endswith("its pods will run unpinned here")


def test_a_huge_image_string_is_echoed_cut_and_warnings_are_capped() -> None:
    huge = f"{ECR}/shop/api:" + "x" * 5000
    many = subject(huge, *(f"{ECR}/shop/api:failing-{n}" for n in range(14)))
    denied = decide(many, VIEW, POLICY, Mode.ENFORCE)
    warned = decide(many, VIEW, POLICY, Mode.WARN)

    assert not denied.allowed and "x" * 300 not in denied.message and "; and 5 more" in denied.message
    assert len(warned.warnings) == 10 and warned.warnings[-1] == "tagwarden: 6 more images with problems (see the log)"
