"""One deployment for an organization: member accounts' events through the real handlers, on moto.

What the member template forwards arrives on the central organization bus unchanged: EventBridge keeps the
sender's `account` (and `region`) when it delivers an event to a bus of another account (the PutPermission
reference: "Rules with an account field do not match any events sent from other accounts"). So a member's
event is the sample event with the member's account id wherever the sample has its own. Audit logs of member
clusters arrive through the Logs destination's Kinesis stream (`events/audit_watcher/kinesis_delivery.json`).

The central account is 111122223333 (TAGWARDEN_ACCOUNT_ID; moto keeps its own registry in its default
account, reached with the function's own credentials), the member 444455556666, whose registry moto holds
under that account: only credentials from assuming the member's read role reach it.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from tagwarden.adapters.aws_clients import AccountEcrClients
from tagwarden.adapters.ecr_registry import OrganizationRegistries
from tagwarden.domain.alerts import AlertType
from tagwarden.domain.images import ImageName
from tagwarden.domain.tags import TagRef
from tagwarden.events.parsing import InvalidEventError
from tagwarden.ports import ManifestUnreadableError

from tests.conftest import cold_start
from tests.integration.test_cli import tagwarden
from tests.integration.test_fuzz_handlers import JSON_VALUES, SETTINGS
from tests.support.audit import audit_line, with_images
from tests.support.events import ecr_image_action, ecr_scan, load_event
from tests.support.handlers import FakeLambdaContext, Handler
from tests.support.multiarch import Build, build, build_pushes, put_build
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

CENTRAL = "111122223333"
MEMBER = "444455556666"
ROLE = "tagwarden-member-read"
A = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
B = "sha256:0dd98d59f9f1e66f1115f07b99063d6f3c6de7f1f2cd85dec2783d3f5d7efbfa"


def registry(account: str) -> str:
    return f"{account}.dkr.ecr.{REGION}.amazonaws.com"


def forwarded(event: dict[str, Any], account: str) -> dict[str, Any]:
    """The sample event as the member `account` emits it, hence as the organization bus delivers it."""
    return json.loads(json.dumps(event).replace(CENTRAL, account))  # type: ignore[no-any-return]


def organization_environment(stack: Stack, *, role: str | None = ROLE) -> dict[str, str]:
    """What the template gives the functions with OrganizationId set."""
    return {
        **stack.environment(),
        "TAGWARDEN_ACCOUNT_ID": CENTRAL,
        "MEMBER_READ_ROLE_NAME": role or "",
        "AWS_REGION": REGION,
    }


@pytest.fixture
def push_guard_org(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    return cold_start("push_guard", organization_environment(stack), lambda_context)


@pytest.fixture
def scan_recorder_org(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    return cold_start("scan_recorder", organization_environment(stack), lambda_context)


@pytest.fixture
def audit_watcher_org(stack: Stack, lambda_context: FakeLambdaContext) -> Handler:
    return cold_start("audit_watcher", organization_environment(stack), lambda_context)


@pytest.fixture
def member_ecr(stack: Stack) -> ECRClient:
    """The member account's ECR, reached as the member itself would (moto: credentials of that account)."""
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole", RoleSessionName="member-admin"
    )["Credentials"]
    client = boto3.client(
        "ecr",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    client.create_repository(repositoryName="shop/api")
    return client


@pytest.fixture
def central_ecr(stack: Stack) -> ECRClient:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


def item(stack: Stack, pk: str, sk: str) -> dict[str, Any] | None:
    return next((i for i in stack.items() if i["pk"]["S"] == pk and i["sk"]["S"] == sk), None)


def platforms_recorded(stack: Stack, account: str, pushed: Build) -> list[str]:
    record = item(stack, f"IMAGE#{registry(account)}/shop/api@{pushed.index_digest}", "IMAGE")
    assert record is not None
    return sorted(child["M"]["digest"]["S"] for child in record.get("children", {}).get("L", []))


def push_build(push_guard: Handler, pushed: Build, tag: str, account: str) -> None:
    for event in build_pushes(pushed, tag, "2026-11-20T09:00:00Z"):
        assert push_guard(forwarded(event, account))["outcome"] in {"recorded", "untagged"}


# --- ECR events of a member account, judged in the member's registry -----------------------------------


def test_a_member_push_of_an_image_index_is_read_in_the_members_registry_through_its_read_role(
    stack: Stack, member_ecr: ECRClient, central_ecr: ECRClient, push_guard_org: Handler
) -> None:
    # Given the same repository and tag in both accounts, holding different builds
    member_build, central_build = build("member"), build("central")
    put_build(member_ecr, "shop/api", member_build, tag="2.0.0")
    put_build(central_ecr, "shop/api", central_build, tag="2.0.0")

    # When both pushes reach the central push guard (the member's forwarded to the organization bus)
    push_build(push_guard_org, member_build, "2.0.0", MEMBER)
    push_build(push_guard_org, central_build, "2.0.0", CENTRAL)

    # Then each index's platforms come from its own registry, and the two tags are two ledger pointers
    member_manifests = [member_build.digest(p) for p in member_build.platforms]
    member_manifests += [member_build.attestation_digest(p) for p in member_build.attestations]
    assert platforms_recorded(stack, MEMBER, member_build) == sorted(member_manifests)
    assert len(platforms_recorded(stack, CENTRAL, central_build)) == 4
    member_tag = item(stack, f"TAG#{registry(MEMBER)}/shop/api:2.0.0", "POINTER")
    central_tag = item(stack, f"TAG#{registry(CENTRAL)}/shop/api:2.0.0", "POINTER")
    assert member_tag is not None and central_tag is not None
    assert member_tag["digest"]["S"] == member_build.index_digest
    assert central_tag["digest"]["S"] == central_build.index_digest


def test_without_the_member_read_role_a_member_index_is_not_found_in_the_central_registry(
    stack: Stack, member_ecr: ECRClient, central_ecr: ECRClient, lambda_context: FakeLambdaContext
) -> None:
    # A single-account deployment (no role name) reads every registry with its own credentials: ECR only
    # answers for the function's own account, so the member's index has no platforms (counted unscanned).
    push_guard = cold_start("push_guard", organization_environment(stack, role=None), lambda_context)
    member_build = build("member")
    put_build(member_ecr, "shop/api", member_build, tag="2.0.0")

    push_build(push_guard, member_build, "2.0.0", MEMBER)

    assert platforms_recorded(stack, MEMBER, member_build) == []


def test_a_member_tag_moved_after_its_scan_alerts_in_the_members_account_apart_from_the_central_one(
    stack: Stack, push_guard_org: Handler, scan_recorder_org: Handler
) -> None:
    # Given 1.4.0 pushed and scanned in both accounts (same repository, tag and digest)
    for account in (MEMBER, CENTRAL):
        push_guard_org(forwarded(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T09:00:00Z"), account))
        scanned = ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T09:01:00Z", counts={"LOW": 1})
        scan_recorder_org(forwarded(scanned, account))
    assert stack.received_alerts() == []

    # When the member's 1.4.0 is pushed again with other content
    result = push_guard_org(forwarded(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"), MEMBER))

    # Then the alert names the member's account and registry; the central 1.4.0 is untouched
    [received] = stack.received_alerts()
    alert = received.alert
    assert result["alerts"] == [alert.alert_id]
    assert (alert.type, alert.account, alert.region, alert.registry) == (
        AlertType.TAG_MOVED_AFTER_SCAN, MEMBER, REGION, registry(MEMBER),
    )  # fmt: skip
    assert (alert.previous_digest, alert.current_digest, alert.scanned_digest) == (A, B, A)
    central_tag = item(stack, f"TAG#{registry(CENTRAL)}/shop/api:1.4.0", "POINTER")
    assert central_tag is not None and central_tag["digest"]["S"] == A

    # And the same move in the central account is another finding, with another id
    push_guard_org(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:00:00Z"))
    [central] = stack.received_alerts()
    assert central.alert.account == CENTRAL and central.alert.alert_id != alert.alert_id


def test_a_member_inspector_finding_is_recorded_for_the_members_image(
    stack: Stack, push_guard_org: Handler, scan_recorder_org: Handler
) -> None:
    finding = load_event("scan_recorder/inspector_ecr_finding.json")
    image = finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"]
    digest, repository = image["imageHash"], image["repositoryName"]
    push_guard_org(
        forwarded(ecr_image_action(tag="2.1.0", digest=digest, repository=repository, time=finding["time"]), MEMBER)
    )

    scan_recorder_org(forwarded(finding, MEMBER))

    findings = [(i["pk"]["S"], i["sk"]["S"]) for i in stack.items() if i["sk"]["S"].startswith("VULN#")]
    assert [pk for pk, _ in findings] == [f"IMAGE#{registry(MEMBER)}/{repository}@{digest}"]
    assert item(stack, f"IMAGE#{registry(CENTRAL)}/{repository}@{digest}", "IMAGE") is None


# --- EKS audit logs of member clusters, through the Logs destination's Kinesis stream -------------------


def kinesis_record(payload: dict[str, Any] | bytes, sequence: int) -> dict[str, Any]:
    """One record of the audit stream: the sample's envelope around `payload` (gzip JSON, or raw bytes)."""
    [_, sample] = load_event("audit_watcher/kinesis_delivery.json")["Records"]
    record: dict[str, Any] = copy.deepcopy(sample)
    data = payload if isinstance(payload, bytes) else gzip.compress(json.dumps(payload).encode(), mtime=0)
    number = f"4965773654811920194738815426380412584312390867218178{sequence:04d}"
    record["kinesis"].update({"data": base64.b64encode(data).decode(), "sequenceNumber": number})
    record["eventID"] = f"shardId-000000000000:{number}"
    return record


def audit_payload(owner: str, cluster: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": "kube-apiserver-audit-d9c12955a891f5b378a39dbd1383b507",
        "subscriptionFilters": ["tagwarden-audit"],
        "logEvents": [
            {"id": f"3792740331800000000000000000000000000000000000000000{n:04d}", "timestamp": 1795167000000 + n,
             "message": json.dumps(line, separators=(",", ":"))}
            for n, line in enumerate(lines)
        ],
    }  # fmt: skip


def deployment(image: str) -> dict[str, Any]:
    return with_images(audit_line("deployment_create.json"), image)


def test_the_sample_kinesis_delivery_checks_the_member_cluster_under_its_own_name(
    stack: Stack, audit_watcher_org: Handler
) -> None:
    # The control message CloudWatch Logs sends when the destination is created, then a member's delivery.
    result = audit_watcher_org(load_event("audit_watcher/kinesis_delivery.json"))

    assert result == {"batchItemFailures": []}
    received = stack.received_alerts()
    assert {r.alert.type for r in received} == {AlertType.UNSCANNED_IMAGE_DEPLOYED}
    assert {r.alert.kubernetes.cluster for r in received if r.alert.kubernetes} == {f"{MEMBER}:{REGION}:prod-eks"}


def test_clusters_named_alike_in_two_accounts_are_two_clusters_in_the_ledger_and_the_alerts(
    stack: Stack, audit_watcher_org: Handler
) -> None:
    image = f"{registry(CENTRAL)}/shop/api:latest"
    # The central cluster's own subscription (direct), and a member's cluster of the same name (Kinesis)
    direct = audit_watcher_org(load_event("audit_watcher/cloudwatch_logs_envelope.json"))
    through_stream = audit_watcher_org(
        {"Records": [kinesis_record(audit_payload(MEMBER, "prod-eks", [deployment(image)]), 1)]}
    )

    assert through_stream == {"batchItemFailures": []}
    by_cluster: dict[str, set[str]] = {}
    for received in stack.received_alerts():
        assert received.alert.kubernetes is not None
        by_cluster.setdefault(received.alert.kubernetes.cluster, set()).add(received.alert.alert_id)
    assert set(by_cluster) == {"prod-eks", f"{MEMBER}:{REGION}:prod-eks"}
    assert by_cluster["prod-eks"] == set(direct["alerts"])
    assert not by_cluster["prod-eks"] & by_cluster[f"{MEMBER}:{REGION}:prod-eks"]
    # Usage is recorded per cluster too: the rollouts of the two Deployments are two ledger items.
    workloads = sorted(i["pk"]["S"] for i in stack.items() if i["pk"]["S"].startswith("WORKLOAD#"))
    assert workloads == ["WORKLOAD#444455556666:eu-west-1:prod-eks/shop/api", "WORKLOAD#prod-eks/shop/api"]


def test_a_bad_record_fails_alone_and_the_records_beside_it_are_checked(
    stack: Stack, audit_watcher_org: Handler
) -> None:
    first = f"{registry(MEMBER)}/shop/api:1.0.0"
    last = f"{registry(MEMBER)}/shop/web:1.0.0"
    batch = {
        "Records": [
            kinesis_record(audit_payload(MEMBER, "prod", [deployment(first)]), 1),
            kinesis_record(b"\x1f\x8b this is no gzip stream", 2),
            kinesis_record({"not": "a subscription payload"}, 3),
            kinesis_record(audit_payload(MEMBER, "staging", [deployment(last)]), 4),
        ]
    }

    result = audit_watcher_org(batch)

    # Only the two bad records are reported: Lambda retries from the first of them, then parks the range
    # in the failure queue; the good records' alerts are out already (and not repeated on the retry).
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": batch["Records"][1]["kinesis"]["sequenceNumber"]},
            {"itemIdentifier": batch["Records"][2]["kinesis"]["sequenceNumber"]},
        ]
    }
    received = stack.received_alerts()
    assert sorted((r.alert.repository, r.alert.kubernetes.cluster) for r in received if r.alert.kubernetes) == [
        ("shop/api", f"{MEMBER}:{REGION}:prod"),
        ("shop/web", f"{MEMBER}:{REGION}:staging"),
    ]
    assert audit_watcher_org(batch) == result
    assert stack.received_alerts() == []


@pytest.mark.parametrize(
    "group", ["/aws/eks/a#b/cluster", "/attacker/x#y|z", "/aws/eks/prod/cluster/../x", "/aws/eks/-x/cluster", ""]
)
def test_a_delivery_from_another_log_group_is_skipped_and_counted(
    stack: Stack, audit_watcher_org: Handler, group: str
) -> None:
    payload = {**audit_payload(MEMBER, "x", [deployment(f"{registry(MEMBER)}/shop/api:1.0.0")]), "logGroup": group}

    with mock.patch("tagwarden.events.audit.metrics.add_metric") as add_metric:
        result = audit_watcher_org({"Records": [kinesis_record(payload, 1)]})

    assert result == {"batchItemFailures": []}
    assert stack.received_alerts() == []
    assert not [i for i in stack.items() if i["pk"]["S"].startswith(("WORKLOAD#", "FINDING#"))]
    add_metric.assert_any_call(name="ForeignLogGroupDeliveries", unit="Count", value=1)


def test_a_delivery_that_inflates_beyond_the_bound_fails_alone(stack: Stack, audit_watcher_org: Handler) -> None:
    # 40 MiB of zeros in 40 KiB: past MAX_DELIVERY_BYTES (32 MiB), which is all that is inflated.
    bomb = kinesis_record(gzip.compress(b"\0" * (40 * 1024 * 1024), compresslevel=9), 1)
    good = kinesis_record(audit_payload(MEMBER, "prod", [deployment(f"{registry(MEMBER)}/shop/api:1.0.0")]), 2)

    with (
        mock.patch("tagwarden.events.audit.zlib.decompressobj", wraps=zlib.decompressobj) as inflaters,
        mock.patch("tagwarden.events.audit.logger.error") as log_error,
    ):
        result = audit_watcher_org({"Records": [bomb, good]})

    assert result == {"batchItemFailures": [{"itemIdentifier": bomb["kinesis"]["sequenceNumber"]}]}
    assert inflaters.call_count == 2  # both records inflated through the bounded path
    assert [r.alert.kubernetes.cluster for r in stack.received_alerts() if r.alert.kubernetes] == [
        f"{MEMBER}:{REGION}:prod"
    ]
    [((message,), logged)] = [(c.args, c.kwargs["extra"]) for c in log_error.call_args_list]
    assert message == "invalid audit delivery record"
    assert logged["problem"] == "TooLarge" and logged["max_bytes"] == 32 * 1024 * 1024
    assert logged["sequence_number"] == bomb["kinesis"]["sequenceNumber"]


def test_a_direct_delivery_that_inflates_beyond_the_bound_is_invalid(audit_watcher_org: Handler) -> None:
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024), compresslevel=9)

    with pytest.raises(InvalidEventError, match="inflates to more than 33554432 bytes"):
        audit_watcher_org({"awslogs": {"data": base64.b64encode(bomb).decode()}})


def test_the_direct_subscription_of_the_central_clusters_still_works(stack: Stack, audit_watcher_org: Handler) -> None:
    result = audit_watcher_org(load_event("audit_watcher/cloudwatch_logs_envelope.json"))

    assert result["cluster"] == "prod-eks"
    assert len(result["alerts"]) == 2


# --- the per-account ECR clients -----------------------------------------------------------------------


def test_only_another_account_of_an_organization_deployment_is_read_through_its_role() -> None:
    clients = AccountEcrClients(CENTRAL, ROLE, partition="aws-cn")
    single_account = AccountEcrClients(CENTRAL, None)

    assert clients.role_arn(MEMBER) == f"arn:aws-cn:iam::{MEMBER}:role/{ROLE}"
    assert clients.role_arn(CENTRAL) is None
    assert single_account.role_arn(MEMBER) is None


def test_member_clients_are_made_once_per_account_and_region_and_read_the_members_registry(
    member_ecr: ECRClient,
) -> None:
    member_build = build("member")
    put_build(member_ecr, "shop/api", member_build, tag="2.0.0")
    clients = AccountEcrClients(CENTRAL, ROLE)
    registries = OrganizationRegistries(clients)

    index = registries.index_of(ImageName(registry(MEMBER), "shop/api"), member_build.index_digest)

    assert index is not None and len(index.children) == 4
    assert clients.ecr(MEMBER, REGION) is clients.ecr(MEMBER, REGION)
    assert clients.ecr(MEMBER, "us-east-1") is not clients.ecr(MEMBER, REGION)


def test_a_member_whose_read_role_cannot_be_assumed_leaves_its_manifests_unread(stack: Stack) -> None:
    # The member template is not deployed in that account (or trusts another stack): STS says AccessDenied,
    # which retrying cannot change; the push guard records the push without the index's platforms.
    sts = boto3.client("sts", region_name=REGION)
    registries = OrganizationRegistries(AccountEcrClients(CENTRAL, ROLE, sts=sts))
    with Stubber(sts) as stubbed:
        stubbed.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)

        with pytest.raises(ManifestUnreadableError):
            registries.index_of(ImageName(registry(MEMBER), "shop/api"), A)


# --- `tagwarden replay` of a member's delivery --------------------------------------------------------


def test_replaying_a_member_delivery_names_its_cluster_with_the_members_account(stack: Stack, tmp_path: Path) -> None:
    # What an operator decodes from the audit stream after a failure (a record's data, gunzipped): the
    # subscription data, owner included. The command knows the stack's account from TAGWARDEN_ACCOUNT_ID.
    image = f"{registry(MEMBER)}/shop/api:1.0.0"
    path = tmp_path / "member-delivery.json"
    path.write_text(json.dumps(audit_payload(MEMBER, "prod", [deployment(image)])))

    result = tagwarden(
        "replay", str(path), "--table", stack.table_name, "--json", env={"TAGWARDEN_ACCOUNT_ID": CENTRAL}
    )

    assert result.exit_code == 0, result.output
    replayed = json.loads(result.stdout)
    [event] = replayed["events"]
    [alert] = replayed["alerts"]["would_alert"]
    cluster = f"{MEMBER}:{REGION}:prod"
    assert event["audit"]["cluster"] == cluster
    assert f"in cluster {cluster} deploys" in alert["summary"]


def test_replaying_a_member_delivery_without_the_stacks_account_is_refused(stack: Stack, tmp_path: Path) -> None:
    # The central account's own prod-eks has a Deployment; a member's prod-eks delivery must not join it.
    audit_watcher_org = cold_start("audit_watcher", organization_environment(stack), FakeLambdaContext())
    audit_watcher_org(load_event("audit_watcher/cloudwatch_logs_envelope.json"))
    before = sorted(i["pk"]["S"] for i in stack.items() if i["pk"]["S"].startswith("WORKLOAD#"))
    path = tmp_path / "member-delivery.json"
    path.write_text(json.dumps(audit_payload(MEMBER, "prod-eks", [deployment(f"{registry(MEMBER)}/shop/api:1.0.0")])))

    result = tagwarden("replay", str(path), "--table", stack.table_name, "--json", env={"TAGWARDEN_ACCOUNT_ID": None})

    assert result.exit_code == 2, result.output
    assert f"comes from account {MEMBER}" in result.output
    assert "TAGWARDEN_ACCOUNT_ID" in result.output
    assert sorted(i["pk"]["S"] for i in stack.items() if i["pk"]["S"].startswith("WORKLOAD#")) == before


def test_replaying_raw_audit_lines_without_the_stacks_account_still_works(stack: Stack, tmp_path: Path) -> None:
    # Raw lines carry no owner: they are the stack's own cluster's, as in a single-account deployment.
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(audit_payload("", "prod", [deployment(f"{registry(CENTRAL)}/shop/api:1.0.0")])))

    result = tagwarden("replay", str(path), "--table", stack.table_name, "--json", env={"TAGWARDEN_ACCOUNT_ID": None})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["events"][0]["audit"]["cluster"] == "prod"


# --- hostile records ----------------------------------------------------------------------------------


def _payload_from(owner: str, group: str) -> bytes:
    """A subscription payload with the given `owner` and `logGroup`, compressed as CloudWatch Logs does."""
    payload = {**audit_payload(MEMBER, "x", []), "owner": owner, "logGroup": group}
    return gzip.compress(json.dumps(payload).encode())


ANY_DATA = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda value: gzip.compress(json.dumps(value).encode()), JSON_VALUES),
    st.builds(_payload_from, st.text(max_size=30), st.text(max_size=30)),
)


@given(data=ANY_DATA)
@SETTINGS
def test_a_hostile_record_fails_alone_beside_a_good_one(stack: Stack, audit_watcher_org: Handler, data: bytes) -> None:
    good = kinesis_record(audit_payload(MEMBER, "prod", [deployment(f"{registry(MEMBER)}/shop/api:1.0.0")]), 1)
    hostile = kinesis_record(data, 2)

    result = audit_watcher_org({"Records": [hostile, good]})

    assert result["batchItemFailures"] in ([], [{"itemIdentifier": hostile["kinesis"]["sequenceNumber"]}])
    # The good delivery was checked: its finding exists (published now, or by an earlier example).
    assert any(i["pk"]["S"].startswith("FINDING#") for i in stack.items())


def assumed(expires_in: timedelta) -> dict[str, Any]:
    """An AssumeRole response whose credentials expire after `expires_in`."""
    return {
        "Credentials": {
            "AccessKeyId": "ASIAMEMBERREADROLE01",
            "SecretAccessKey": "secret",
            "SessionToken": "token",
            "Expiration": datetime.now(UTC) + expires_in,
        }
    }


@pytest.mark.parametrize(("expires_in", "assumptions"), [(timedelta(hours=1), 1), (timedelta(minutes=5), 2)])
def test_member_credentials_are_kept_until_they_near_their_expiry(
    stack: Stack, expires_in: timedelta, assumptions: int
) -> None:
    # Two reads of a member's registry: one AssumeRole while the credentials are fresh; one per read once
    # they are within botocore's refresh window (15 minutes advisory, 10 mandatory) of expiring.
    sts = boto3.client("sts", region_name=REGION)
    registries = OrganizationRegistries(AccountEcrClients(CENTRAL, ROLE, sts=sts))
    with Stubber(sts) as stubbed:
        for _ in range(assumptions):
            stubbed.add_response("assume_role", assumed(expires_in))

        for _ in range(2):
            registries.tag_digest(TagRef(ImageName(registry(MEMBER), "shop/api"), "1.0.0"))

        stubbed.assert_no_pending_responses()


def test_the_role_arn_names_the_partition_of_the_functions_region() -> None:
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "cn-north-1"}):
        assert AccountEcrClients(CENTRAL, ROLE).role_arn(MEMBER) == f"arn:aws-cn:iam::{MEMBER}:role/{ROLE}"
    assert AccountEcrClients(CENTRAL, ROLE).role_arn(MEMBER) == f"arn:aws:iam::{MEMBER}:role/{ROLE}"
