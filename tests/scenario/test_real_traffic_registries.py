"""Real traffic, part 2: every name of a registry, which registries are watched, and tags that move by design.

Each story goes through the real handlers on moto, with events shaped like the samples in `events/`
(sources in events/README.md).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.severity import Severity

from tests.conftest import cold_start
from tests.support.audit import ECR, at, audit_line, envelope, kubelet_status, with_images
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.stack import Stack

A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"
UPSTREAM = "sha256:570eac2a29033f58fd8f61006a889612c63f57d597d64d951acfbf3f21cf40e9"
MOVED_UPSTREAM = "sha256:6429cfb634a4679056e93029b3b31908249a5081c5546db70342f10980886b38"
DUAL_STACK = "111122223333.dkr-ecr.eu-west-1.on.aws"
CACHED_ALPINE = f"{ECR}/docker-hub/alpine"


def emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """The metrics the handlers flushed (CloudWatch embedded metric format on stdout), summed by name."""
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return totals


def logged(caplog: pytest.LogCaptureFixture, level: str, message: str) -> list[dict[str, Any]]:
    """The structured fields of the log records at `level` whose message starts with `message`."""
    return [
        vars(record)
        for record in caplog.records
        if record.levelname == level and record.getMessage().startswith(message)
    ]


def tag_pointer(stack: Stack, image: str, tag: str) -> dict[str, Any] | None:
    return next(
        (i for i in stack.items() if i["pk"]["S"] == f"TAG#{image}:{tag}" and i["sk"]["S"] == "POINTER"),
        None,
    )


def scanned(push_guard: Handler, scan_recorder: Handler, tag: str, digest: str) -> None:
    push_guard(ecr_image_action(tag=tag, digest=digest, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=digest, tags=[tag], time="2026-11-20T09:01:00Z", counts={"LOW": 1}))


# --- Every name of a registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        DUAL_STACK,
        "111122223333.dkr-ecr-fips.eu-west-1.on.aws",
        "111122223333.dkr.ecr-fips.eu-west-1.amazonaws.com",
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com:443",
        "111122223333.DKR.ECR.EU-WEST-1.AMAZONAWS.COM",
    ],
)
def test_a_dual_stack_or_fips_reference_is_judged_like_the_canonical_one(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, host: str
) -> None:
    # Given a Deployment and its pod, both naming the image by another hostname of the registry
    deployment = with_images(audit_line("deployment_create.json"), f"{host}/shop/api:latest")
    running = kubelet_status("api-7d9f8c6b5d-x2k9p", f"{host}/shop/api:latest", f"{host}/shop/api@{A}")

    # When nothing was pushed yet, Then both are unscanned findings on the canonical registry
    result = audit_watcher(envelope([deployment, running]))
    received = stack.received_alerts()
    assert result["observations"] == 2
    assert sorted((r.alert.type, r.alert.registry, r.alert.current_digest or "") for r in received) == [
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, ECR, ""),
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, ECR, A),
    ]

    # When the tag is pushed and scanned clean (events name account and region), Then the same lines pass
    scanned(push_guard, scan_recorder, "latest", A)
    canary = with_images(deployment, f"{host}/shop/api:latest")
    canary["objectRef"]["name"] = "api-canary"
    result = audit_watcher(envelope([canary, running]))
    assert result["alerts"] == []
    assert stack.received_alerts() == []
    # and the usage was recorded on the one pointer the push made
    pointer = tag_pointer(stack, f"{ECR}/shop/api", "latest")
    assert pointer is not None and "prod-eks/shop/api-canary" in pointer["in_use"]["M"]


# Registries of the China and European Sovereign Cloud partitions: each host form, the events (which name the
# registry by account and region, with the partition's ARNs) recording under the canonical name.
CHINA = "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"
SOVEREIGN = "111122223333.dkr.ecr.eusc-de-east-1.amazonaws.eu"


def in_partition(event: dict[str, Any], region: str, partition: str) -> dict[str, Any]:
    """The event as the partition's EventBridge delivers it: its region, and ARNs in its partition."""
    event["region"] = region
    event["resources"] = [
        arn.replace("arn:aws:ecr:eu-west-1:", f"arn:{partition}:ecr:{region}:") for arn in event["resources"]
    ]
    return event


@pytest.mark.parametrize(
    ("host", "canonical", "region", "partition"),
    [
        (CHINA, CHINA, "cn-north-1", "aws-cn"),
        ("111122223333.DKR.ECR.CN-NORTH-1.AMAZONAWS.COM.CN:443", CHINA, "cn-north-1", "aws-cn"),
        ("111122223333.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", CHINA, "cn-north-1", "aws-cn"),
        (SOVEREIGN, SOVEREIGN, "eusc-de-east-1", "aws-eusc"),
        ("111122223333.dkr.ecr.eusc-de-east-1.amazonaws.eu:443", SOVEREIGN, "eusc-de-east-1", "aws-eusc"),
        ("111122223333.Dkr.Ecr-Fips.EUSC-DE-EAST-1.AmazonAWS.EU", SOVEREIGN, "eusc-de-east-1", "aws-eusc"),
    ],
)
def test_a_reference_into_the_china_or_european_sovereign_partition_is_judged_under_its_canonical_name(
    stack: Stack,
    push_guard: Handler,
    scan_recorder: Handler,
    audit_watcher: Handler,
    capsys: pytest.CaptureFixture[str],
    host: str,
    canonical: str,
    region: str,
    partition: str,
) -> None:
    # Given a Deployment and its pod naming the image by one of the partition's host forms
    deployment = with_images(audit_line("deployment_create.json"), f"{host}/shop/api:1.4.0")
    running = kubelet_status("api-7d9f8c6b5d-x2k9p", f"{host}/shop/api:1.4.0", f"{host}/shop/api@{A}")
    capsys.readouterr()

    # When nothing was pushed yet, Then both are unscanned findings on the canonical registry, known as ECR
    result = audit_watcher(envelope([deployment, running]))
    assert result["observations"] == 2
    assert sorted((r.alert.type, r.alert.registry, r.alert.current_digest or "") for r in stack.received_alerts()) == [
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, canonical, ""),
        (AlertType.UNSCANNED_IMAGE_DEPLOYED, canonical, A),
    ]
    metrics = emitted(capsys)
    assert "UnrecognisedEcrReferences" not in metrics and "UnmonitoredImages" not in metrics

    # When the partition's ECR reports the push and a clean scan (account and region name the registry)
    push_guard(in_partition(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T09:00:00Z"), region, partition))
    scan_recorder(
        in_partition(
            ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T09:01:00Z", counts={"LOW": 1}), region, partition
        )
    )

    # Then both are recorded under the canonical name, and the same lines pass
    pointer = tag_pointer(stack, f"{canonical}/shop/api", "1.4.0")
    assert pointer is not None and pointer["digest"]["S"] == A
    assert pointer["scan"]["M"]["verdict"]["S"] == "pass"
    canary = with_images(deployment, f"{host}/shop/api:1.4.0")
    canary["objectRef"]["name"] = "api-canary"
    result = audit_watcher(envelope([canary, running]))
    assert result["alerts"] == []
    assert stack.received_alerts() == []
    pointer = tag_pointer(stack, f"{canonical}/shop/api", "1.4.0")
    assert pointer is not None and "prod-eks/shop/api-canary" in pointer["in_use"]["M"]


def test_an_ecr_reference_in_an_unknown_form_is_reported_and_still_judged(
    stack: Stack, audit_watcher: Handler, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a pod naming an ECR-looking host that is no known ECR endpoint (a China region under .com)
    odd = "111122223333.dkr.ecr.cn-north-1.amazonaws.com"
    line = with_images(audit_line("deployment_create.json"), f"{odd}/shop/api:latest")
    capsys.readouterr()

    # When the audit watcher reads it
    result = audit_watcher(envelope([line]))

    # Then it is counted and logged as unrecognised, and judged as written rather than silently ignored
    metrics = emitted(capsys)
    assert metrics["UnrecognisedEcrReferences"] == 1
    assert "UnmonitoredImages" not in metrics
    (warning,) = logged(caplog, "WARNING", "image references name ECR")
    assert warning["registries"] == [odd]
    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.registry) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, odd)
    assert result["observations"] == 1


# --- Which registries are judged ----------------------------------------------------------------------

ADDON_IMAGES = [
    # The VPC CNI and kube-proxy, as the aws-node and kube-proxy DaemonSets name them in eu-west-1.
    "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni-init:v1.19.2-eksbuild.1",
    "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1",
    "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.31.3-minimal-eksbuild.2",
    "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2",
]


def test_a_new_node_pulling_eks_addon_images_raises_nothing(
    stack: Stack, audit_watcher: Handler, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a node joining: the DaemonSet controller creates its add-on pods, and the kubelet reports them
    lines: list[dict[str, Any]] = []
    for n, image in enumerate(ADDON_IMAGES):
        pod = with_images(audit_line("pod_create_request_response.json"), image)
        pod["objectRef"]["namespace"] = "kube-system"
        pod["auditID"] = f"addon-create-{n}"
        repository = image.split("@")[0].rsplit(":", 1)[0]
        digest = "sha256:" + f"{n}" * 64
        lines += [pod, kubelet_status(f"addon-{n}", image, f"{repository}@{digest}", f"addon-status-{n}")]
    capsys.readouterr()

    # When the audit watcher reads the delivery
    result = audit_watcher(envelope(lines))

    # Then no add-on image is judged or alerted, and they are counted as excluded, not as unmonitored
    metrics = emitted(capsys)
    assert result["alerts"] == []
    assert stack.received_alerts() == []
    assert result["observations"] == 0
    assert metrics["ExcludedImages"] == 2 * len(ADDON_IMAGES)
    assert "UnmonitoredImages" not in metrics


def test_an_operators_exclusions_are_never_alerted(
    stack: Stack, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given exclusions of a whole vendor registry and of one repository prefix of ours
    watcher = cold_start(
        "audit_watcher",
        {
            **stack.environment(),
            "EXCLUDED_IMAGE_PREFIXES": "444455556666.dkr.ecr.us-east-1.amazonaws.com,"
            "111122223333.dkr-ecr.eu-west-1.on.aws/platform",
        },
        lambda_context,
    )
    images = [
        "444455556666.dkr.ecr.us-east-1.amazonaws.com/vendor/agent:2.1",
        f"{ECR}/platform/base:1",
        f"{ECR}/shop/api:latest",
    ]
    lines = []
    for n, image in enumerate(images):
        line = with_images(audit_line("deployment_create.json"), image)
        line["objectRef"]["name"] = f"app-{n}"
        lines.append(line)
    capsys.readouterr()

    # When their workloads are deployed
    result = watcher(envelope(lines))

    # Then only the image outside the exclusions is judged
    metrics = emitted(capsys)
    assert metrics["ExcludedImages"] == 2
    (received,) = stack.received_alerts()
    assert received.alert.repository == "shop/api"
    assert result["observations"] == 1


def test_an_image_from_an_account_whose_events_never_arrive_says_so(
    stack: Stack, lambda_context: FakeLambdaContext
) -> None:
    # Given Tagwarden receives the events of its own account only
    watcher = cold_start("audit_watcher", {**stack.environment(), "MONITORED_ACCOUNTS": "111122223333"}, lambda_context)
    foreign = "444455556666.dkr.ecr.us-east-1.amazonaws.com/vendor/agent:2.1"
    lines = [
        with_images(audit_line("deployment_create.json"), foreign),
        with_images(audit_line("cronjob_create.json"), f"{ECR}/shop/api:latest"),
    ]

    # When workloads of both accounts deploy unscanned images
    watcher(envelope(lines))

    # Then both are judged; the foreign one's summary says why nothing of it can be in the ledger
    received = {r.alert.account: r.alert for r in stack.received_alerts()}
    assert set(received) == {"444455556666", "111122223333"}
    vendor = received["444455556666"]
    assert (vendor.type, vendor.severity) == (AlertType.UNSCANNED_IMAGE_DEPLOYED, Severity.HIGH)
    assert "account 444455556666, whose ECR events do not reach Tagwarden" in vendor.summary
    assert "do not reach Tagwarden" not in received["111122223333"].summary


def test_without_monitored_accounts_a_foreign_image_is_an_ordinary_unscanned_finding(
    stack: Stack, audit_watcher: Handler
) -> None:
    line = with_images(audit_line("deployment_create.json"), "444455556666.dkr.ecr.us-east-1.amazonaws.com/x:1")
    audit_watcher(envelope([line]))
    (received,) = stack.received_alerts()
    assert received.alert.type is AlertType.UNSCANNED_IMAGE_DEPLOYED
    assert "no push of this tag in force" in received.alert.summary


# --- Pull-through cache and replication ---------------------------------------------------------------


def test_a_pull_through_cache_sync_is_recorded_and_an_upstream_move_is_a_move(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given the cache rule `docker-hub` synced alpine:3.17.2 (repository-name carries the prefix already)
    sync = load_event("push_guard/pull_through_cache_sync.json")
    assert push_guard(sync) == {"outcome": "recorded", "alerts": []}
    pointer = tag_pointer(stack, CACHED_ALPINE, "3.17.2")
    assert pointer is not None and pointer["digest"]["S"] == UPSTREAM

    # When a pod runs it before and after its scan, Then it is judged like a pushed image
    # (at 11:30, after the 11:20:31 sync: lines are judged at their own time)
    deploy = at(with_images(audit_line("deployment_create.json"), f"{CACHED_ALPINE}:3.17.2"), "11:30:00")
    audit_watcher(envelope([deploy]))
    (unscanned,) = stack.received_alerts()
    assert unscanned.alert.type is AlertType.UNSCANNED_IMAGE_DEPLOYED
    scan_recorder(
        ecr_scan(digest=UPSTREAM, tags=["3.17.2"], time="2026-11-20T11:21:00Z", repository="docker-hub/alpine")
    )
    deploy["objectRef"]["name"] = "alpine-2"
    assert audit_watcher(envelope([deploy]))["alerts"] == []

    # When upstream moves the tag and the cache syncs again
    moved = load_event("push_guard/pull_through_cache_sync.json")
    moved.update({"id": "0b6f7c1e-5d2a-4c1b-9f3e-2a7d8c4e6f10", "time": "2026-11-21T08:02:11Z"})
    moved["detail"]["image-digest"] = MOVED_UPSTREAM
    result = push_guard(moved)

    # Then the protected tag moved after its scan: CRITICAL, raised for nothing more
    (alert,) = stack.received_alerts()
    assert result["alerts"] == [alert.alert.alert_id]
    assert (alert.alert.type, alert.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.CRITICAL)
    assert (alert.alert.repository, alert.alert.previous_digest) == ("docker-hub/alpine", UPSTREAM)


def test_a_failed_pull_through_sync_is_ignored_with_its_reason(
    stack: Stack, push_guard: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    # Shape from the EventBridge schema (failure-code, failure-reason); AWS publishes no failed sample.
    failed = load_event("push_guard/pull_through_cache_sync.json")
    failed["detail"].update(
        {"sync-status": "FAILED", "failure-code": "UPSTREAM_UNAVAILABLE", "failure-reason": "upstream said 503"}
    )

    assert push_guard(failed) == {"outcome": "ignored", "alerts": []}

    (ignored,) = logged(caplog, "INFO", "event ignored")
    assert ignored["reason"] == "pull-through cache sync-status 'FAILED', failure-code 'UPSTREAM_UNAVAILABLE'"
    assert stack.items() == []


def test_a_replicated_image_is_recorded_in_the_destination_registry(
    stack: Stack, push_guard: Handler, audit_watcher: Handler
) -> None:
    # Given an image replicated from us-west-2 into this account's eu-west-1 registry
    replicated = load_event("push_guard/replication_success.json")

    # When the push guard receives the event (delivered in the destination account and region)
    assert push_guard(replicated) == {"outcome": "recorded", "alerts": []}

    # Then the tag is recorded where pods pull the replica from, and nowhere else
    pointer = tag_pointer(stack, CACHED_ALPINE, "3.17.2")
    assert pointer is not None and pointer["digest"]["S"] == UPSTREAM
    assert not [i for i in stack.items() if "us-west-2" in i["pk"]["S"]]
    # and a pod of the replica is judged against it (recorded, not yet scanned)
    deploy = at(with_images(audit_line("deployment_create.json"), f"{CACHED_ALPINE}:3.17.2"), "11:40:00")
    audit_watcher(envelope([deploy]))
    (received,) = stack.received_alerts()
    assert received.alert.current_digest == UPSTREAM


def test_a_failed_replication_is_ignored(stack: Stack, push_guard: Handler) -> None:
    assert push_guard(load_event("push_guard/replication_failed.json")) == {"outcome": "ignored", "alerts": []}
    assert stack.items() == []


# --- Tags that move by design -------------------------------------------------------------------------

SIGNED = "sha256-73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"


@pytest.mark.parametrize("tag", [f"{SIGNED}.sig", f"{SIGNED}.att", f"{SIGNED}.sbom", SIGNED])
def test_a_signature_tag_that_moves_is_at_most_low(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, tag: str
) -> None:
    # Given cosign stored a signature (or attestation, SBOM, referrers index) for A, and it was scanned
    push_guard(ecr_image_action(tag=tag, digest=B, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=[tag], time="2026-11-20T10:01:00Z", counts={"CRITICAL": 1}))

    # When a second signature re-pushes the tag with new content
    push_guard(ecr_image_action(tag=tag, digest="sha256:" + "c" * 64, time="2026-11-20T10:05:00Z"))

    # Then the move is recorded and reported, but at LOW: signatures move by design
    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.severity) == (AlertType.TAG_MOVED_AFTER_SCAN, Severity.LOW)
    assert "signature or attestation tag" in received.alert.summary


def test_signature_patterns_can_be_switched_off(stack: Stack, lambda_context: FakeLambdaContext) -> None:
    guard = cold_start("push_guard", {**stack.environment(), "SIGNATURE_TAG_PATTERNS": ""}, lambda_context)
    guard(ecr_image_action(tag=f"{SIGNED}.sig", digest=B, time="2026-11-20T10:00:00Z"))
    guard(ecr_image_action(tag=f"{SIGNED}.sig", digest=A, time="2026-11-20T10:05:00Z"))
    (received,) = stack.received_alerts()
    assert received.alert.severity is Severity.MEDIUM  # an ordinary tag


# --- Tags the ledger cannot store ---------------------------------------------------------------------


def test_a_scan_naming_a_tag_too_long_for_the_ledger_is_recorded_without_it(
    stack: Stack,
    push_guard: Handler,
    scan_recorder: Handler,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a digest pushed as `latest`, and a scan event that also names a 300-character tag ECR accepted
    push_guard(ecr_image_action(tag="latest", digest=A, time="2026-11-20T09:00:00Z"))
    event = load_event("scan_recorder/ecr_scan_several_tags.json")
    long_tag = "build-" + "x" * 294
    event["detail"].update({"image-digest": A, "image-tags": ["latest", long_tag]})
    capsys.readouterr()

    # When the scan recorder receives it
    result = scan_recorder(event)

    # Then the scan is recorded and reaches `latest`; the long tag is skipped with a warning and a metric
    assert result["outcome"] == "recorded"
    pointer = tag_pointer(stack, f"{ECR}/shop/api", "latest")
    assert pointer is not None and pointer["scan"]["M"]["status"]["S"] == "COMPLETE"
    metrics = emitted(capsys)
    assert metrics["UnstorableScanTags"] == 1
    (warning,) = logged(caplog, "WARNING", "scan event tags skipped")
    assert warning["tags"] == [long_tag[:80]] and warning["skipped"] == 1
    assert not [i for i in stack.items() if long_tag[:40] in json.dumps(i)]
