"""Admission: what may run, decided per image from the ledger, before the kubelet pulls anything.

A tag is looked up where the ledger says it points *now* (never cached: a verdict cached by tag is what
the mutant-tag attack bypasses) and replaced by that digest when its scan passed, so the kubelet can only
pull the scanned content. A digest (or `tag@digest`, where the runtime pulls the digest) is never
trusted as given: it is verified against its own record. The table, per image in a judged registry (the
first four are admission's own `Problem`s, the rest the ledger's `Refusal`s, shared with `tagwarden check`):

| reference  | ledger state                                                   | problem           |
|------------|----------------------------------------------------------------|-------------------|
| any        | not a valid reference                                          | UNPARSEABLE       |
| any        | a bare image id (`sha256:<hex>`, `<64 hex>`): a node-local image | LOCAL_IMAGE_ID  |
| any        | more distinct judged images in the object than one read holds  | TOO_MANY_IMAGES   |
| any        | the ledger could not be read in time                           | LEDGER_UNAVAILABLE|
| tag        | the ledger never saw the tag                                   | UNKNOWN_TAG       |
| tag        | the tag was deleted and not pushed again                       | TAG_DELETED       |
| tag        | its digest has no completed scan, but an earlier one of the tag did | TAG_MOVED    |
| digest     | the ledger never saw the digest in this repository             | UNKNOWN_DIGEST    |
| any        | no scan / only FAILED scans / failing / undecided verdict      | UNSCANNED, ...    |
| tag        | otherwise                                                      | (pinned)          |
| digest     | otherwise                                                      | (verified)        |

What a problem does depends on where the image is and the namespace's mode: a Pod's image is denied in
`enforce` and allowed with a warning in `warn`; a workload's pod template only ever gets warnings (its
pods are judged when they are created), so GitOps tools see no drift and no refused sync. Passing tags are
pinned in Pods (and, when configured, in pod templates, except a Job's on UPDATE, which is immutable).
An UPDATE is judged on the images it changes: an unchanged image of a running pod is not pinned (that
would restart the container) nor refused (that would block label and finalizer updates).

Nothing the requester writes is trusted: the `tagwarden.io/*` annotations they send are replaced by what
this decision computes, and no annotation, label or field is read to decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tagwarden.domain.deployments import DigestKey
from tagwarden.domain.images import ImageReference, InvalidReferenceError, is_local_image_id, parse_reference
from tagwarden.domain.refusals import Refusal
from tagwarden.domain.registry_scope import Judgement, RegistryScope
from tagwarden.domain.rules import short_digest
from tagwarden.domain.scans import ScanState, ScanStatus, Verdict, severity_counts
from tagwarden.domain.tags import TagPointer, TagRef

ANNOTATION_PREFIX = "tagwarden.io/"
ORIGINAL_IMAGES_ANNOTATION = "tagwarden.io/original-images"
# Distinct tags and digests one object may name: one BatchGetItem reads at most 100 keys.
MAX_IMAGES_PER_OBJECT = 100
# Image strings echoed in messages, warnings and logs are cut to this (the requester writes them).
MAX_ECHOED_IMAGE = 200
# Warnings per answer: kubectl prints each; the API server keeps at most 4 KiB of them.
MAX_WARNINGS = 10


class Mode(StrEnum):
    """A namespace's admission mode (label `tagwarden.io/mode`); `off` namespaces never reach the webhook."""

    ENFORCE = "enforce"
    WARN = "warn"


class Decision(StrEnum):
    """What happened to one image."""

    PINNED = "pin"  # a tag replaced by the scanned, passing digest it names
    VERIFIED = "verify"  # a digest (or an already pinned tag@digest) whose scan passes
    DENIED = "deny"
    WARNED = "warn"  # a problem, allowed: warn mode, or a pod template
    SKIPPED = "skip"  # not judged: out of scope, excluded, or unchanged by an UPDATE


class Problem(StrEnum):
    """Why an image may not run before the ledger is asked (the module docstring's table); what the ledger
    answers is a `Refusal`, the reasons `tagwarden check` gives too."""

    UNPARSEABLE = "unparseable reference"
    LOCAL_IMAGE_ID = "bare image id"
    TOO_MANY_IMAGES = "too many images"
    LEDGER_UNAVAILABLE = "ledger unavailable"


# Admission's words where they are not the check command's: admission judges `tag@digest` by its digest, so
# its TAG_MOVED is only a tag whose new content has no completed scan while an earlier content's scan did.
_WORDS: dict[Problem | Refusal, str] = {Refusal.TAG_MOVED: "tag moved after its scan"}


def words(problem: Problem | Refusal) -> str:
    """How admission names a problem in its messages, warnings and log lines."""
    return _WORDS.get(problem, problem.value)


@dataclass(frozen=True, slots=True)
class ImageSlot:
    """One container image field of the object under admission."""

    # JSON pointer of the image field, e.g. `/spec/initContainers/0/image`.
    path: str
    container: str
    # The image as written; None when the field is not a string.
    text: str | None
    # In a workload's pod template (not a Pod's own spec).
    template: bool = False
    # False for an UPDATE that leaves this image as it was: not judged.
    changed: bool = True
    # An image volume's `image.reference` (`container` then names the volume).
    volume: bool = False

    @property
    def where(self) -> str:
        """How messages name this image's place."""
        kind = "image volume" if self.volume else "container"
        return f"{'pod template ' if self.template else ''}{kind} {clip(self.container, 63)}"


@dataclass(frozen=True, slots=True)
class AdmissionSubject:
    """The object under admission, as far as images go."""

    namespace: str
    kind: str
    name: str
    operation: str
    slots: tuple[ImageSlot, ...]
    # Whether passing tags are rewritten in this object (Pods always; pod templates when configured).
    pinnable: bool
    # Whether `tagwarden.io/*` annotations are written on this object (not through a subresource that drops them).
    annotated: bool
    # The `tagwarden.io/*` annotations the request carries (never trusted), and the original-images entries
    # they claim (path -> reference).
    incoming_annotations: frozenset[str] = frozenset()
    claimed_originals: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdmissionView:
    """What the ledger says, read in one request: tag pointers (None: unknown tag) and digest records.

    A digest absent from `digests` is unknown to the ledger; present with None, known but never scanned.
    """

    pointers: Mapping[TagRef, TagPointer | None]
    digests: Mapping[DigestKey, ScanState | None]


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """How the webhook applies its decisions."""

    scope: RegistryScope
    exempt_namespaces: frozenset[str] = frozenset()
    pin_templates: bool = False


@dataclass(frozen=True, slots=True)
class ImageDecision:
    """The decision for one image, with what a person should read and do."""

    slot: ImageSlot
    decision: Decision
    reason: str
    problem: Problem | Refusal | None = None
    digest: str | None = None
    # The reference written in its place (pins only).
    pinned: str | None = None


@dataclass(frozen=True, slots=True)
class AdmissionVerdict:
    """The answer for one object: allowed or not, the images rewritten, the annotations, the warnings."""

    allowed: bool
    decisions: tuple[ImageDecision, ...] = ()
    # (path, new reference) for every pinned image.
    pins: tuple[tuple[str, str], ...] = ()
    # The `tagwarden.io/original-images` entries the object must carry (path -> original reference);
    # None: leave the object's annotations alone.
    originals: Mapping[str, str] | None = None
    message: str = ""
    warnings: tuple[str, ...] = ()


def ledger_reads(subject: AdmissionSubject, scope: RegistryScope) -> tuple[set[TagRef], set[DigestKey]]:
    """The tag pointers and digest records one decision needs: each distinct one once, in one read."""
    tags: set[TagRef] = set()
    digests: set[DigestKey] = set()
    for slot in subject.slots:
        reference = _judged_reference(slot, scope)
        if isinstance(reference, ImageReference):
            if reference.digest is not None:
                digests.add((reference.name, reference.digest))
            elif reference.tag is not None:
                tags.add(TagRef(reference.name, reference.tag))
    return tags, digests


def decide(
    subject: AdmissionSubject, view: AdmissionView | None, policy: AdmissionPolicy, mode: Mode
) -> AdmissionVerdict:
    """Decide every image of the object; `view` None means the ledger could not be read.

    Allowed unless a Pod's image has a problem in `enforce`. The annotation records where each pinned image
    came from; an entry the request brought is kept only while the image at its path is still that
    reference pinned to a digest (reinvocation, or an UPDATE of a pinned pod), so forged entries vanish.
    """
    if subject.namespace in policy.exempt_namespaces:
        return AdmissionVerdict(allowed=True)
    too_many = too_many_images(subject, policy.scope)
    decisions = tuple(_decide_slot(slot, subject, view, policy, mode, too_many) for slot in subject.slots)
    pins = tuple((d.slot.path, d.pinned) for d in decisions if d.pinned is not None)
    denied = [d for d in decisions if d.decision is Decision.DENIED]
    warnings = tuple(_warning(d, mode) for d in decisions if d.decision is Decision.WARNED)
    if len(warnings) > MAX_WARNINGS:
        more = len(warnings) - MAX_WARNINGS + 1
        warnings = (*warnings[: MAX_WARNINGS - 1], f"tagwarden: {more} more images with problems (see the log)")
    originals: dict[str, str] | None = None
    if subject.annotated:
        originals = {d.slot.path: d.slot.text for d in decisions if d.pinned is not None and d.slot.text}
        current = {slot.path: slot.text for slot in subject.slots}
        for path, original in subject.claimed_originals.items():
            if path not in originals and _pinned_form_of(current.get(path), original):
                originals[path] = original
    message = ""
    if denied:
        listed = "; ".join(f"{d.slot.where} ({clip(d.slot.text)}): {d.reason}" for d in denied[:MAX_WARNINGS])
        if len(denied) > MAX_WARNINGS:
            listed += f"; and {len(denied) - MAX_WARNINGS} more"
        message = f"tagwarden denied {subject.kind} {subject.name}: {listed}"
    return AdmissionVerdict(not denied, decisions, pins, originals, message, warnings)


def too_many_images(subject: AdmissionSubject, scope: RegistryScope) -> bool:
    """Whether the object names more distinct judged images than one ledger read holds (refused as such)."""
    tags, digests = ledger_reads(subject, scope)
    return len(tags) + len(digests) > MAX_IMAGES_PER_OBJECT


def clip(text: str | None, limit: int = MAX_ECHOED_IMAGE) -> str:
    """A requester-written string as echoed back: cut, never whole when it is huge."""
    text = "" if text is None else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _judged_reference(slot: ImageSlot, scope: RegistryScope) -> ImageReference | Problem | None:
    """The parsed reference when its registry is judged; a Problem when it cannot be judged; None: skip."""
    if slot.text is None:
        return Problem.UNPARSEABLE
    if is_local_image_id(slot.text):
        return Problem.LOCAL_IMAGE_ID
    try:
        reference = parse_reference(slot.text)
    except InvalidReferenceError:
        return Problem.UNPARSEABLE
    return reference if scope.judgement(reference.name) is Judgement.JUDGED else None


def _decide_slot(
    slot: ImageSlot,
    subject: AdmissionSubject,
    view: AdmissionView | None,
    policy: AdmissionPolicy,
    mode: Mode,
    too_many: bool = False,
) -> ImageDecision:
    if not slot.changed:
        return ImageDecision(slot, Decision.SKIPPED, "unchanged by this update")
    reference = _judged_reference(slot, policy.scope)
    if reference is None:
        return ImageDecision(slot, Decision.SKIPPED, "registry not judged (not ECR, not monitored, or excluded)")
    if isinstance(reference, Problem):
        return _refuse(slot, mode, reference, _PROBLEM_TEXT[reference], None)
    if too_many:
        return _refuse(slot, mode, Problem.TOO_MANY_IMAGES, _PROBLEM_TEXT[Problem.TOO_MANY_IMAGES], None)
    if view is None:
        return _refuse(slot, mode, Problem.LEDGER_UNAVAILABLE, _PROBLEM_TEXT[Problem.LEDGER_UNAVAILABLE], None)
    problem, digest, reason = judge(reference, view)
    if problem is not None:
        return _refuse(slot, mode, problem, reason, digest)
    assert digest is not None
    if reference.digest is not None:
        return ImageDecision(slot, Decision.VERIFIED, reason, digest=digest)
    if slot.template and not subject.pinnable:
        return ImageDecision(slot, Decision.VERIFIED, f"{reason}; pods created from it are pinned", digest=digest)
    assert slot.text is not None
    return ImageDecision(slot, Decision.PINNED, reason, digest=digest, pinned=f"{slot.text}@{digest}")


def _refuse(slot: ImageSlot, mode: Mode, problem: Problem | Refusal, reason: str, digest: str | None) -> ImageDecision:
    # A pod template is never refused: its pods are judged when they are created.
    decision = Decision.DENIED if mode is Mode.ENFORCE and not slot.template else Decision.WARNED
    return ImageDecision(slot, decision, reason, problem, digest)


def judge(reference: ImageReference, view: AdmissionView) -> tuple[Refusal | None, str | None, str]:
    """Whether the content `reference` pulls has a passing completed scan: (problem, digest, reason)."""
    if reference.digest is not None:
        key = (reference.name, reference.digest)
        content = f"{reference.name}@{short_digest(reference.digest)}"
        if key not in view.digests:
            return (
                Refusal.UNKNOWN_DIGEST,
                reference.digest,
                f"unknown digest: {content} is not in the ledger; if it was pushed before Tagwarden was deployed "
                "run `tagwarden backfill`, else push it to the registry and wait for its scan",
            )
        return _judge_scan(content, reference.digest, view.digests[key])
    assert reference.tag is not None
    tag = TagRef(reference.name, reference.tag)
    pointer = view.pointers.get(tag)
    if pointer is None:
        return (
            Refusal.UNKNOWN_TAG,
            None,
            f"unknown tag: {tag} is not in the ledger; if it was pushed before Tagwarden was deployed run "
            "`tagwarden backfill`, else push it and wait for its scan",
        )
    if pointer.digest is None:
        return (
            Refusal.TAG_DELETED,
            None,
            f"tag deleted: {tag} names nothing (it last named {short_digest(pointer.last_digest)}); deploy a "
            "scanned digest",
        )
    scan = pointer.scan
    mark = pointer.scanned_mark()
    if (scan is None or not scan.completed) and mark is not None and mark.digest != pointer.digest:
        return (
            Refusal.TAG_MOVED,
            pointer.digest,
            f"tag moved after its scan: {tag} now names {short_digest(pointer.digest)}, which has no completed scan; "
            f"its scan checked {short_digest(mark.digest)}: deploy {reference.name}@{mark.digest} if that is the "
            "content you meant, or wait for the new content's scan",
        )
    return _judge_scan(str(tag), pointer.digest, scan)


def _judge_scan(content: str, digest: str, scan: ScanState | None) -> tuple[Refusal | None, str | None, str]:
    when = f"{scan.scanned_at:%Y-%m-%d %H:%M:%S}Z" if scan is not None else ""
    if scan is None:
        return (
            Refusal.UNSCANNED,
            digest,
            f"unscanned: {content} ({short_digest(digest)}) has no scan yet; wait for its scan and retry, or deploy "
            "a scanned digest",
        )
    if scan.status is ScanStatus.FAILED:
        return (
            Refusal.SCAN_FAILED,
            digest,
            f"failed scan: the {scan.scanner} scan of {content} at {when} FAILED and checked nothing; rescan it, "
            "or deploy a scanned digest",
        )
    if scan.verdict is Verdict.UNDECIDED:
        return (
            Refusal.UNDECIDED_VERDICT,
            digest,
            f"undecided verdict: the {scan.scanner} scan of {content} at {when} has findings of unreported "
            "severity that the fail severity could count; deploy a digest with a passing scan",
        )
    if scan.verdict is not Verdict.PASS:
        counts = severity_counts(scan.finding_counts) or "findings at or above the fail severity"
        return (
            Refusal.FAILING_VERDICT,
            digest,
            f"failing verdict: the {scan.scanner} scan of {content} at {when} found {counts}; fix and push a new "
            "image, or deploy a digest with a passing scan",
        )
    return None, digest, f"scanned {short_digest(digest)}: passing {scan.scanner} scan from {when}"


_PROBLEM_TEXT = {
    Problem.UNPARSEABLE: "unparseable reference: not an image reference a runtime would pull; write "
    "registry/repository:tag or registry/repository@sha256:<digest>",
    Problem.LOCAL_IMAGE_ID: "bare image id: it names whatever image the node holds under that id, which no "
    "registry scan covers; deploy registry/repository@sha256:<manifest digest>",
    Problem.TOO_MANY_IMAGES: f"too many images: the object names more than {MAX_IMAGES_PER_OBJECT} distinct images "
    "in judged registries, more than Tagwarden verifies in one review; split it",
    Problem.LEDGER_UNAVAILABLE: "ledger unavailable: Tagwarden could not read its ledger in time, so the image "
    "cannot be verified; retry in a moment",
}


# What a warning says to do, per problem: the API server may cut a warning past 256 characters, so the
# details (digests, scan times) stay in the denial message and the decision's log line.
_ADVICE: dict[Problem | Refusal, str] = {
    Problem.UNPARSEABLE: "write registry/repository:tag or @sha256:<digest>",
    Problem.LOCAL_IMAGE_ID: "deploy registry/repository@sha256:<manifest digest>",
    Problem.TOO_MANY_IMAGES: f"more than {MAX_IMAGES_PER_OBJECT} distinct images; split the object",
    Problem.LEDGER_UNAVAILABLE: "not verified; retry in a moment",
    Refusal.UNKNOWN_TAG: "run `tagwarden backfill` if it predates Tagwarden, else wait for its scan",
    Refusal.UNKNOWN_DIGEST: "run `tagwarden backfill` if it predates Tagwarden, else wait for its scan",
    Refusal.TAG_DELETED: "deploy a scanned digest",
    Refusal.TAG_MOVED: "deploy the scanned digest, or wait for the new content's scan",
    Refusal.UNSCANNED: "wait for its scan, or deploy a scanned digest",
    Refusal.SCAN_FAILED: "rescan it, or deploy a scanned digest",
    Refusal.FAILING_VERDICT: "deploy a digest with a passing scan",
    Refusal.UNDECIDED_VERDICT: "deploy a digest with a passing scan",
}
MAX_WARNING_LENGTH = 256


def _warning(decision: ImageDecision, mode: Mode) -> str:
    """A short warning (kubectl prints it): where, what is wrong, what to do."""
    assert decision.problem is not None
    content = f" ({short_digest(decision.digest)})" if decision.digest else ""
    problem = decision.problem
    text = f"tagwarden: {decision.slot.where}{content}: {words(problem)}: {_ADVICE[problem]}"
    if decision.slot.template:
        # What happens to the pods made from it, in this namespace's mode.
        text += "; its pods will be denied here" if mode is Mode.ENFORCE else "; its pods will run unpinned here"
    return text if len(text) <= MAX_WARNING_LENGTH else text[: MAX_WARNING_LENGTH - 3] + "..."


def _pinned_form_of(current: str | None, original: str) -> bool:
    """Whether `current` is `original` (a reference without digest) pinned to a digest."""
    if current is None or not current.startswith(original + "@"):
        return False
    try:
        return parse_reference(original).digest is None and parse_reference(current).digest is not None
    except InvalidReferenceError:
        return False
