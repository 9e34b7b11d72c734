"""Multi-platform images through the real push guard and scan recorder, on moto's ECR holding real manifests.

ECR emits one PUSH per manifest: untagged platform and attestation manifests, and the tagged index
(research 1.3); scanners scan the platform manifests only (2.4). The index's scan state is derived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.facts import IgnoredEvent
from tagwarden.domain.severity import Severity

from tests.support.events import ecr_scan, load_event
from tests.support.handlers import Handler, load_function_module
from tests.support.multiarch import OCI_MANIFEST as OCI_MANIFEST_TYPE
from tests.support.multiarch import Build, build, build_pushes, manifest_push, put_build, sample_build
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture
def ecr(stack: Stack) -> ECRClient:
    """moto's ECR (inside the stack's mock) with the sample repository."""
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


def item(stack: Stack, pk: str, sk: str) -> dict[str, object] | None:
    return next((i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == sk), None)


def digest_record(stack: Stack, digest: str) -> dict[str, object]:
    found = item(stack, f"IMAGE#{REGISTRY}/shop/api@{digest}", "IMAGE")
    assert found is not None
    return found


def pointer(stack: Stack, tag: str) -> dict[str, object]:
    found = item(stack, f"TAG#{REGISTRY}/shop/api:{tag}", "POINTER")
    assert found is not None
    return found


def scan_status(record: dict[str, object]) -> tuple[str, str | None] | None:
    scan = record.get("scan")
    if scan is None:
        return None
    values = scan["M"]  # type: ignore[index]
    return values["status"]["S"], values["verdict"]["S"] if "verdict" in values else None


def platform_scans(scan_recorder: Handler, pushed: Build, time: str, counts: dict[str, dict[str, int]]) -> None:
    for platform in pushed.platforms:
        scan_recorder(ecr_scan(digest=pushed.digest(platform), tags=[], time=time, counts=counts.get(platform, {})))


def test_a_tagged_index_push_records_its_platforms_and_attestations(
    stack: Stack, ecr: ECRClient, push_guard: Handler
) -> None:
    sample = sample_build()
    put_build(ecr, "shop/api", sample, tag="2.0.0")
    event = load_event("push_guard/push_index_tagged.json")
    assert event["detail"]["image-digest"] == sample.index_digest  # the sample event names the stored index

    assert push_guard(event) == {"outcome": "recorded", "alerts": []}

    children = digest_record(stack, sample.index_digest)["children"]["L"]  # type: ignore[index]
    assert [(c["M"]["platform"]["S"], c["M"]["attestation"]["BOOL"]) for c in children] == [
        ("linux/amd64", False),
        ("linux/arm64", False),
        ("unknown/unknown", True),
        ("unknown/unknown", True),
    ]
    for platform in sample.platforms:
        parents = digest_record(stack, sample.digest(platform))["parents"]["SS"]  # type: ignore[index]
        assert parents == [sample.index_digest]
    # Not every platform is scanned: the tag names unscanned content.
    assert scan_status(pointer(stack, "2.0.0")) is None


def test_platform_scans_after_the_index_push_make_the_index_and_its_tag_scanned(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    pushed = build("api 2.1.0")
    put_build(ecr, "shop/api", pushed, tag="2.1.0")
    for event in build_pushes(pushed, "2.1.0", "2026-11-20T13:00:00Z"):
        push_guard(event)

    scan_recorder(ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time="2026-11-20T13:00:30Z", counts={}))
    assert scan_status(pointer(stack, "2.1.0")) is None  # arm64 still unscanned
    scan_recorder(
        ecr_scan(digest=pushed.digest("linux/arm64"), tags=[], time="2026-11-20T13:00:41Z", counts={"HIGH": 2})
    )

    assert scan_status(digest_record(stack, pushed.index_digest)) == ("COMPLETE", "pass")
    assert scan_status(pointer(stack, "2.1.0")) == ("COMPLETE", "pass")
    assert stack.received_alerts() == []


def test_platform_scans_before_the_index_push_are_derived_at_the_push(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    pushed = build("api 2.2.0")
    put_build(ecr, "shop/api", pushed, tag="2.2.0")
    *children, index_push = build_pushes(pushed, "2.2.0", "2026-11-20T13:00:00Z")
    for event in children:
        push_guard(event)
    platform_scans(scan_recorder, pushed, "2026-11-20T13:00:02Z", {"linux/arm64": {"CRITICAL": 1}})

    push_guard(index_push)

    # The worst platform decides: arm64 has a CRITICAL finding.
    assert scan_status(pointer(stack, "2.2.0")) == ("COMPLETE", "fail")
    assert stack.received_alerts() == []


def test_moving_a_protected_tag_to_another_index_after_its_scan_is_critical(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    release, other = build("api 3.0.0"), build("api 3.0.0 rebuilt")
    put_build(ecr, "shop/api", release, tag="3.0.0")
    for event in build_pushes(release, "3.0.0", "2026-11-20T13:00:00Z"):
        push_guard(event)
    platform_scans(scan_recorder, release, "2026-11-20T13:00:20Z", {})
    put_build(ecr, "shop/api", other, tag="3.0.0")
    for event in build_pushes(other, "3.0.0", "2026-11-20T15:00:00Z"):
        push_guard(event)

    (received,) = stack.received_alerts()
    alert = received.alert
    assert (alert.type, alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert (alert.previous_digest, alert.current_digest) == (release.index_digest, other.index_digest)
    assert alert.scanned_digest == release.index_digest


def test_a_tag_moved_off_an_index_while_its_platforms_were_scanned_is_alerted_when_the_scan_completes(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    release, attacker = build("api 4.0.0"), build("api 4.0.0 evil")
    put_build(ecr, "shop/api", release, tag="4.0.0")
    for event in build_pushes(release, "4.0.0", "2026-11-20T13:00:00Z"):
        push_guard(event)
    put_build(ecr, "shop/api", attacker, tag="4.0.0")
    for event in build_pushes(attacker, "4.0.0", "2026-11-20T13:00:10Z"):
        push_guard(event)
    # A protected tag moved off an index with no completed scan: HIGH, as README's severity table says for
    # a single image (protected, not scanned -> TAG_OVERWRITTEN HIGH).
    (overwritten,) = stack.received_alerts()
    assert (overwritten.alert.type, overwritten.alert.severity) == (AlertType.TAG_OVERWRITTEN, Severity.HIGH)
    assert (overwritten.alert.previous_digest, overwritten.alert.current_digest) == (
        release.index_digest,
        attacker.index_digest,
    )

    platform_scans(scan_recorder, release, "2026-11-20T13:00:40Z", {})

    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert received.alert.scanned_digest == release.index_digest


def test_the_index_push_still_makes_two_ledger_requests(stack: Stack, ecr: ECRClient) -> None:
    from tests.support.handlers import FakeLambdaContext
    from tests.support.requests import RequestLog, dynamodb_operations

    pushed = build("api 5.0.0")
    put_build(ecr, "shop/api", pushed, tag="5.0.0")
    requests = RequestLog()
    requests.attach()
    module = load_function_module("push_guard", stack.environment())
    *_, index_push = build_pushes(pushed, "5.0.0", "2026-11-20T13:00:00Z")
    with requests.record() as calls:
        assert module.lambda_handler(index_push, FakeLambdaContext())["outcome"] == "recorded"
    # The index's children are read in the same batch as the pointer, and written in the same transaction.
    assert dynamodb_operations(calls) == {"BatchGetItem": 1, "TransactWriteItems": 1}


def test_a_platform_scan_racing_the_index_push_reads_again(stack: Stack, ecr: ECRClient, push_guard: Handler) -> None:
    """The scan recorder read the platform before the index push linked it to its index: its write must fail
    (and be retried), or the index would never learn of the scan."""
    from tagwarden.adapters.dynamodb.scan_ledger import DynamoDbScanLedger
    from tagwarden.adapters.dynamodb.table import LedgerTable
    from tagwarden.domain.scan_rules import decide_scan
    from tagwarden.domain.scans import FindingSeverity
    from tagwarden.domain.tag_policy import TagPolicy
    from tagwarden.events.parsing import parse_event
    from tagwarden.events.scans import EcrImageScanEvent
    from tagwarden.ports import ConcurrentUpdateError

    pushed = build("api 8.0.0")
    put_build(ecr, "shop/api", pushed, tag="8.0.0")
    ledger = DynamoDbScanLedger(LedgerTable(stack.dynamodb, stack.table_name))
    event = ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time="2026-11-20T13:00:01Z", counts={})
    scan = parse_event(event, EcrImageScanEvent).to_fact()
    assert not isinstance(scan, IgnoredEvent)
    reading = ledger.read_for_scan(scan)  # before the index push: no parents
    assert reading.snapshot.parents == {}

    for push in build_pushes(pushed, "8.0.0", "2026-11-20T13:00:00Z"):
        push_guard(push)

    state = scan.state(FindingSeverity.CRITICAL)
    decision = decide_scan(scan, state, reading.snapshot, TagPolicy(), state.scanned_at)
    with pytest.raises(ConcurrentUpdateError):
        ledger.apply_scan(scan, decision, reading.snapshot, state.scanned_at)
    assert ledger.read_for_scan(scan).snapshot.parents.keys() == {pushed.index_digest}


def test_two_platform_scans_deriving_the_index_at_once_cannot_both_win(
    stack: Stack, ecr: ECRClient, push_guard: Handler
) -> None:
    """Each read the other platform unscanned: the second write must read again, or the index stays unscanned."""
    from tagwarden.adapters.dynamodb.scan_ledger import DynamoDbScanLedger
    from tagwarden.adapters.dynamodb.table import LedgerTable
    from tagwarden.domain.scan_rules import decide_parents, decide_scan
    from tagwarden.domain.scans import FindingSeverity
    from tagwarden.domain.tag_policy import TagPolicy
    from tagwarden.events.parsing import parse_event
    from tagwarden.events.scans import EcrImageScanEvent
    from tagwarden.ports import ConcurrentUpdateError

    pushed = build("api 9.0.0")
    put_build(ecr, "shop/api", pushed, tag="9.0.0")
    for push in build_pushes(pushed, "9.0.0", "2026-11-20T13:00:00Z"):
        push_guard(push)
    ledger = DynamoDbScanLedger(LedgerTable(stack.dynamodb, stack.table_name))
    attempts = []
    for platform in pushed.platforms:
        event = ecr_scan(digest=pushed.digest(platform), tags=[], time="2026-11-20T13:00:30Z", counts={})
        scan = parse_event(event, EcrImageScanEvent).to_fact()
        assert not isinstance(scan, IgnoredEvent)
        attempts.append((scan, ledger.read_for_scan(scan)))  # both read before either writes

    for n, (scan, reading) in enumerate(attempts):
        state = scan.state(FindingSeverity.CRITICAL)
        decision = decide_scan(scan, state, reading.snapshot, TagPolicy(), state.scanned_at)
        decision = decide_parents(scan, decision, reading.snapshot, TagPolicy(), state.scanned_at)
        assert decision.parents[0].state is None  # each saw the other platform unscanned
        if n == 0:
            ledger.apply_scan(scan, decision, reading.snapshot, state.scanned_at)
        else:
            with pytest.raises(ConcurrentUpdateError):
                ledger.apply_scan(scan, decision, reading.snapshot, state.scanned_at)


def test_an_index_with_malformed_entries_keeps_the_good_ones_and_is_recorded(
    stack: Stack, ecr: ECRClient, push_guard: Handler
) -> None:
    import json

    from tests.support.multiarch import OCI_INDEX, sha256

    good = build("api 10.0.0")
    entries = json.loads(good.index)["manifests"]
    entries.insert(1, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:nothex"})
    entries.insert(2, "not an object")
    data = json.dumps({"mediaType": OCI_INDEX, "schemaVersion": 2, "manifests": entries})
    ecr.put_image(
        repositoryName="shop/api", imageManifest=data, imageManifestMediaType=OCI_INDEX, imageTag="10.0.0",
        imageDigest=sha256(data.encode()),
    )  # fmt: skip

    event = manifest_push(digest=sha256(data.encode()), time="2026-11-20T13:00:00Z", tag="10.0.0", index=True)
    assert push_guard(event)["outcome"] == "recorded"

    children = digest_record(stack, sha256(data.encode()))["children"]["L"]  # type: ignore[index]
    assert len(children) == 4  # the two platforms and two attestations; the malformed entries skipped


def test_an_index_ecr_no_longer_holds_or_will_not_show_is_recorded_as_unscanned(
    stack: Stack, ecr: ECRClient, push_guard: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagwarden.adapters.ecr_registry import EcrRegistry
    from tagwarden.ports import ManifestUnreadableError

    gone = build("api 11.0.0")  # never stored: deleted before the event arrived
    assert push_guard(manifest_push(digest=gone.index_digest, time="2026-11-20T13:00:00Z", tag="11.0.0", index=True))
    assert "children" not in digest_record(stack, gone.index_digest)

    def refuse(*_: object) -> None:
        raise ManifestUnreadableError("BatchGetImage refused: AccessDeniedException")

    monkeypatch.setattr(EcrRegistry, "index_of", refuse)
    other = build("api 11.0.1")
    put_build(ecr, "shop/api", other, tag="11.0.1")
    result = push_guard(manifest_push(digest=other.index_digest, time="2026-11-20T13:01:00Z", tag="11.0.1", index=True))
    assert result["outcome"] == "recorded"
    assert scan_status(pointer(stack, "11.0.1")) is None


def test_a_docker_manifest_list_is_an_index_too(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    """`docker manifest push` (and older buildx) pushes a Docker manifest list of Docker v2 manifests."""
    import json

    from tests.support.multiarch import sha256

    docker_manifest = "application/vnd.docker.distribution.manifest.v2+json"
    manifest_list = "application/vnd.docker.distribution.manifest.list.v2+json"
    platforms = {"linux/amd64": build("docker amd64"), "linux/arm/v7": build("docker armv7")}
    entries: list[dict[str, Any]] = []
    for platform, source in platforms.items():
        data = next(iter(source.platforms.values())).decode().replace(OCI_MANIFEST_TYPE, docker_manifest)
        ecr.put_image(
            repositoryName="shop/api", imageManifest=data, imageManifestMediaType=docker_manifest,
            imageDigest=sha256(data.encode()),
        )  # fmt: skip
        os_name, architecture, *variant = platform.split("/")
        described = {"architecture": architecture, "os": os_name} | ({"variant": variant[0]} if variant else {})
        entries.append(
            {"mediaType": docker_manifest, "size": len(data), "digest": sha256(data.encode()), "platform": described}
        )
    data = json.dumps({"schemaVersion": 2, "mediaType": manifest_list, "manifests": entries})
    digest = sha256(data.encode())
    ecr.put_image(
        repositoryName="shop/api", imageManifest=data, imageManifestMediaType=manifest_list, imageTag="1.0.0",
        imageDigest=digest,
    )  # fmt: skip
    event = manifest_push(digest=digest, time="2026-11-20T13:00:00Z", tag="1.0.0", index=True)
    event["detail"]["manifest-media-type"] = manifest_list

    push_guard(event)
    for n, entry in enumerate(entries):
        scan_recorder(ecr_scan(digest=entry["digest"], tags=[], time=f"2026-11-20T13:00:3{n}Z", counts={}))

    children = digest_record(stack, digest)["children"]["L"]  # type: ignore[index]
    assert [c["M"]["platform"]["S"] for c in children] == ["linux/amd64", "linux/arm/v7"]
    assert scan_status(pointer(stack, "1.0.0")) == ("COMPLETE", "pass")


def test_an_index_too_large_for_one_transaction_is_recorded_as_unscanned(
    stack: Stack, ecr: ECRClient, push_guard: Handler
) -> None:
    wide = build("api wide", tuple(f"linux/arch{n}" for n in range(50)))  # 100 entries: more than a transaction holds
    put_build(ecr, "shop/api", wide, tag="12.0.0")

    result = push_guard(manifest_push(digest=wide.index_digest, time="2026-11-20T13:00:00Z", tag="12.0.0", index=True))

    assert result["outcome"] == "recorded"
    assert "children" not in digest_record(stack, wide.index_digest)


def test_a_platform_manifest_held_by_many_indexes_is_scanned_for_all_of_them(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    """Reproducible builds of one commit give the same platform manifest each time, in a new index (its
    provenance attestation differs): the manifest's scan is the scan of every one of those indexes."""
    from tests.support.multiarch import OCI_INDEX, attestation_manifest, index_manifest, platform_manifest, sha256

    image = platform_manifest("reproducible", "linux/amd64")
    indexes = []
    for n in range(60):
        provenance = attestation_manifest(f"reproducible run {n}", "linux/amd64")
        index = index_manifest(
            [
                {"mediaType": OCI_MANIFEST_TYPE, "digest": sha256(image), "size": len(image),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST_TYPE, "digest": sha256(provenance), "size": len(provenance),
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": sha256(image)},
                 "platform": {"architecture": "unknown", "os": "unknown"}},
            ]
        )  # fmt: skip
        ecr.put_image(
            repositoryName="shop/api", imageManifest=index.decode(), imageManifestMediaType=OCI_INDEX,
            imageTag=f"nightly-{n}", imageDigest=sha256(index),
        )  # fmt: skip
        push_guard(manifest_push(digest=sha256(index), time="2026-11-20T01:00:00Z", tag=f"nightly-{n}", index=True))
        indexes.append(sha256(index))

    scan_recorder(ecr_scan(digest=sha256(image), tags=[], time="2026-11-20T13:00:00Z", counts={}))

    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in stack.items()}  # one scan of the table, not 120
    pointers = [items[(f"TAG#{REGISTRY}/shop/api:nightly-{n}", "POINTER")] for n in range(60)]
    records = [items[(f"IMAGE#{REGISTRY}/shop/api@{digest}", "IMAGE")] for digest in indexes]
    assert {scan_status(item) for item in pointers + records} == {("COMPLETE", "pass")}
