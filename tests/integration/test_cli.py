"""The `tagwarden` command through typer's CliRunner, on moto: ledger state set up by the real handlers,
ECR, SNS and CloudFormation in moto, and the exit codes a CI gate relies on."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from tagwarden.cli.main import app
from typer.testing import CliRunner, Result

from tests.support.audit import audit_line, envelope, with_images
from tests.support.events import EVENTS, ecr_image_action, ecr_scan, load_event
from tests.support.handlers import Handler
from tests.support.stack import REGION, Stack
from tests.support.template import create_ledger_table

REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
IMAGE = f"{REGISTRY}/shop/api"
A, B, C = ("sha256:" + c * 64 for c in "abc")
# moto's account: the registry the backfill reads.
ECR_ACCOUNT = "123456789012"
ECR_REGISTRY = f"{ECR_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def tagwarden(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run the command; an unexpected exception (a bug) fails the test with its traceback."""
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tagwarden: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


# --- history ---------------------------------------------------------------------------------------


def test_history_is_the_tags_timeline_oldest_first_with_each_digests_scan(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z", counts={"LOW": 2}))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"))
    push_guard(ecr_image_action(tag="main", digest=C, time="2026-11-20T10:03:00Z", event_id="e-3"))  # late

    result = tagwarden("history", f"{IMAGE}:main", "--table", stack.table_name, "--json")

    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [(e["time"], e["action"], e["digest"], e["previous_digest"], e["event_id"], e["late"]) for e in entries] == [
        ("2026-11-20T10:00:00Z", "PUSH", A, None, "e-1", False),
        ("2026-11-20T10:03:00Z", "PUSH", C, A, "e-3", True),
        ("2026-11-20T10:05:00Z", "PUSH", B, C, "e-2", False),
    ]
    scan = entries[0]["scan"]
    assert (scan["status"], scan["verdict"], scan["scanner"], scan["finding_counts"]) == (
        "COMPLETE",
        "pass",
        "ecr-basic",
        {"LOW": 2},
    )
    assert entries[1]["scan"] is None and entries[2]["scan"] is None
    assert len(entries[2]["alerts"]) == 1  # the overwrite A -> B


def test_history_prints_a_table_for_people(stack: Stack, push_guard: Handler, scan_recorder: Handler) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"))
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z", counts={"CRITICAL": 1}))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T09:00:00Z", event_id="e-0"))

    result = tagwarden("history", f"{IMAGE}:main", "--table", stack.table_name)

    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "PUSH" in line]
    assert len(rows) == 2
    assert "e-0" in rows[0] and "late" in rows[0] and "unscanned" in rows[0]
    assert "e-1" in rows[1] and "aaaaaaaaaaaa" in rows[1] and "COMPLETE" in rows[1] and "fail" in rows[1]


def test_history_of_an_unknown_tag_is_a_usage_error_not_a_failed_check(stack: Stack, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))

    for output in ((), ("--json",)):
        result = tagwarden("history", f"{IMAGE}:nope", "--table", stack.table_name, *output)

        assert_one_line_error(result, 2, f"unknown tag: {IMAGE}:nope", repr(stack.table_name))


# --- check and pin -----------------------------------------------------------------------------------


def test_check_passes_a_tag_whose_digest_has_a_passing_scan(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z", counts={"HIGH": 3}))

    result = tagwarden("check", f"{IMAGE}:1.4.0", "--table", stack.table_name)
    as_json = tagwarden("check", f"{IMAGE}:1.4.0", "--table", stack.table_name, "--json")
    by_digest = tagwarden("check", f"{IMAGE}@{A}", "--table", stack.table_name)
    both = tagwarden("check", f"{IMAGE}:1.4.0@{A}", "--table", stack.table_name)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"passed: {IMAGE}@{A} has a passing ecr-basic scan")
    assert as_json.exit_code == 0
    answer = json.loads(as_json.stdout)
    assert (answer["passed"], answer["digest"], answer["pinned"], answer["refusal"]) == (True, A, f"{IMAGE}@{A}", None)
    assert answer["scan"]["verdict"] == "pass"
    assert by_digest.exit_code == 0 and both.exit_code == 0


@pytest.mark.parametrize(
    ("scans", "refusal", "reason"),
    [
        ([], "unscanned", "unscanned: "),
        ([{"status": "FAILED"}], "failed scan", "failed scan: "),
        ([{"counts": {"CRITICAL": 2, "HIGH": 1}}], "failing verdict", "2 CRITICAL, 1 HIGH"),
        # A failed rescan does not undo a failing verdict.
        ([{"counts": {"CRITICAL": 1}}, {"status": "FAILED"}], "failing verdict", "failing verdict: "),
    ],
)
def test_check_refuses_a_digest_without_a_passing_completed_scan(
    stack: Stack,
    push_guard: Handler,
    scan_recorder: Handler,
    scans: list[dict[str, Any]],
    refusal: str,
    reason: str,
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    for minute, scan in enumerate(scans, start=1):
        scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time=f"2026-11-20T10:0{minute}:00Z", **scan))

    text = tagwarden("check", f"{IMAGE}:1.4.0", "--table", stack.table_name)
    as_json = tagwarden("check", f"{IMAGE}:1.4.0", "--json", "--table", stack.table_name)

    assert text.exit_code == 1
    assert len(text.stdout.splitlines()) == 1
    assert reason in text.stdout
    assert as_json.exit_code == 1
    answer = json.loads(as_json.stdout)
    assert (answer["passed"], answer["refusal"], answer["pinned"]) == (False, refusal, None)


def test_check_refuses_a_reference_whose_tag_moved_since_its_scan(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z", counts={}))
    push_guard(ecr_image_action(tag="1.4.0", digest=B, time="2026-11-20T10:05:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=["1.4.0"], time="2026-11-20T10:06:00Z", counts={}))

    result = tagwarden("check", f"{IMAGE}:1.4.0@{A}", "--table", stack.table_name, "--json")

    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["refusal"] == "tag moved since its last scan"
    assert answer["digest"] == B
    assert f"now names {B}, not {A}" in answer["reason"]


def test_check_refuses_a_tag_that_moved_from_its_scanned_digest_to_an_unscanned_one(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z"))

    result = tagwarden("check", f"{IMAGE}:main", "--table", stack.table_name)

    assert result.exit_code == 1
    assert result.stdout == (
        f"tag moved since its last scan: {IMAGE}:main now names {B}, which has no completed scan; "
        f"its last scan checked {A} at 2026-11-20 10:01:00Z\n"
    )


def test_check_refuses_a_pointer_carrying_the_scan_of_another_digest(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z"))
    scan_recorder(ecr_scan(digest=B, tags=["main"], time="2026-11-20T10:06:00Z"))
    # A ledger that went wrong: the pointer naming B carries the scan of A.
    scan_of_a = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"IMAGE#{IMAGE}@{A}"}, "sk": {"S": "IMAGE"}}
    )["Item"]["scan"]
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"TAG#{IMAGE}:main"}, "sk": {"S": "POINTER"}},
        UpdateExpression="SET #scan = :scan",
        ExpressionAttributeNames={"#scan": "scan"},
        ExpressionAttributeValues={":scan": scan_of_a},
    )

    result = tagwarden("check", f"{IMAGE}:main", "--table", stack.table_name)

    assert result.exit_code == 1
    assert result.stdout.startswith(
        f"tag moved since its last scan: the scan {IMAGE}:main carries is not a scan of {B}"
    )


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (f"{IMAGE}:unknown", "unknown tag: "),
        (f"{IMAGE}@{C}", "unknown digest: "),
        (f"{IMAGE}:gone", "tag deleted: "),
    ],
)
def test_check_refuses_what_the_ledger_does_not_hold(
    stack: Stack, push_guard: Handler, reference: str, reason: str
) -> None:
    push_guard(ecr_image_action(tag="gone", digest=A, time="2026-11-20T10:00:00Z"))
    push_guard(ecr_image_action(tag="gone", digest=A, time="2026-11-20T10:01:00Z", action="DELETE"))

    result = tagwarden("check", reference, "--table", stack.table_name)

    assert result.exit_code == 1
    assert result.stdout.startswith(reason)


def test_pin_prints_the_scanned_digest_and_refuses_otherwise(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z"))
    push_guard(ecr_image_action(tag="main", digest=B, time="2026-11-20T10:02:00Z"))

    pinned = tagwarden("pin", f"{IMAGE}:1.4.0", "--table", stack.table_name)
    refused = tagwarden("pin", f"{IMAGE}:main", "--table", stack.table_name)
    refused_json = tagwarden("pin", f"{IMAGE}:main", "--table", stack.table_name, "--json")

    assert (pinned.exit_code, pinned.stdout) == (0, f"{IMAGE}@{A}\n")
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr.startswith("tagwarden: refused: unscanned: ")
    assert refused_json.exit_code == 1
    assert json.loads(refused_json.stdout)["refusal"] == "unscanned"


# --- configuration and AWS errors ----------------------------------------------------------------------


def test_unknown_table_is_a_configuration_error(stack: Stack) -> None:
    result = tagwarden("check", f"{IMAGE}:main", "--table", "no-such-table")

    assert_one_line_error(result, 2, "'no-such-table'", "not found")


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        (f"{IMAGE}:bad tag", "bad image reference"),
        (f"{IMAGE}@sha256:1234", "bad image reference"),
        ("shop/api:latest", "not an ECR image reference"),
        ("", "bad image reference"),
    ],
)
def test_bad_reference_is_a_usage_error(stack: Stack, reference: str, fragment: str) -> None:
    assert_one_line_error(tagwarden("check", reference, "--table", stack.table_name), 2, fragment)


def test_history_needs_a_tag(stack: Stack) -> None:
    assert_one_line_error(tagwarden("history", f"{IMAGE}@{A}", "--table", stack.table_name), 2, "needs a tag")


def test_a_ledger_must_be_named_once(stack: Stack) -> None:
    assert_one_line_error(tagwarden("check", f"{IMAGE}:main"), 2, "--stack-name or --table")
    both = tagwarden("check", f"{IMAGE}:main", "--table", stack.table_name, "--stack-name", "tagwarden")
    assert_one_line_error(both, 2, "not both")


def test_a_flag_wins_over_the_other_ledger_option_set_in_the_environment(stack: Stack, push_guard: Handler) -> None:
    from tests.support.events import ecr_image_action

    push_guard(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"))
    flag = tagwarden("history", f"{IMAGE}:main", "--table", stack.table_name, env={"TAGWARDEN_STACK_NAME": "prod"})
    assert flag.exit_code == 0, flag.output


@pytest.mark.parametrize("empty", [None, ""])
def test_no_region_is_a_configuration_error(stack: Stack, empty: str | None) -> None:
    result = tagwarden(
        "check", f"{IMAGE}:main", "--table", stack.table_name, env={"AWS_DEFAULT_REGION": empty, "AWS_REGION": empty}
    )

    assert_one_line_error(result, 2, "no AWS region")


def test_unknown_profile_is_a_configuration_error(stack: Stack) -> None:
    result = tagwarden("check", f"{IMAGE}:main", "--table", stack.table_name, "--profile", "no-such-profile")

    assert_one_line_error(result, 2, "no-such-profile")


def test_a_ledger_failure_is_an_aws_error(stack: Stack) -> None:
    # A table that is not a ledger: DynamoDB rejects the ledger's keys.
    stack.dynamodb.create_table(
        TableName="not-a-ledger",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    result = tagwarden("check", f"{IMAGE}:main", "--table", "not-a-ledger")

    assert_one_line_error(result, 3, "ValidationException")


# --- --stack-name -------------------------------------------------------------------------------------


def create_cloudformation_stack(name: str, outputs: dict[str, str], parameters: dict[str, str] | None = None) -> None:
    """A stack whose outputs are what the command reads (the resources themselves come from `create_stack`)."""
    parameters = parameters or {}
    template = {
        "Parameters": {key: {"Type": "String"} for key in parameters},
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )


def test_stack_name_reads_the_ledger_table_from_the_stack_outputs(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    create_cloudformation_stack("tagwarden", {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn})
    push_guard(ecr_image_action(tag="1.4.0", digest=A, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=A, tags=["1.4.0"], time="2026-11-20T10:01:00Z"))

    result = tagwarden("pin", f"{IMAGE}:1.4.0", "--stack-name", "tagwarden")
    from_env = tagwarden("pin", f"{IMAGE}:1.4.0", env={"TAGWARDEN_STACK_NAME": "tagwarden"})

    assert (result.exit_code, result.stdout) == (0, f"{IMAGE}@{A}\n")
    assert (from_env.exit_code, from_env.stdout) == (0, f"{IMAGE}@{A}\n")


def test_unknown_stack_or_a_stack_without_the_output_is_a_configuration_error(stack: Stack) -> None:
    create_cloudformation_stack("something-else", {"BucketName": "b"})

    assert_one_line_error(tagwarden("check", f"{IMAGE}:main", "--stack-name", "nope"), 2, "'nope' does not exist")
    assert_one_line_error(
        tagwarden("check", f"{IMAGE}:main", "--stack-name", "something-else"), 2, "no LedgerTableName output"
    )


# --- --endpoint-url -----------------------------------------------------------------------------------


def test_endpoint_url_sends_every_request_to_that_endpoint(moto_server_endpoint: str, tmp_path: Path) -> None:
    # No mock here: only the moto server at the endpoint can answer.
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server_endpoint)
    table = f"tw{uuid.uuid4().hex[:12]}-ledger"
    create_ledger_table(dynamodb, table)
    events = tmp_path / "push.json"
    events.write_text(json.dumps(ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z")))
    endpoint = ("--table", table, "--endpoint-url", moto_server_endpoint)

    replayed = tagwarden("replay", str(events), *endpoint)
    checked = tagwarden("check", f"{IMAGE}:main", *endpoint)

    assert replayed.exit_code == 0, replayed.output
    assert checked.exit_code == 1
    assert checked.stdout.startswith("unscanned: ")


# --- backfill -----------------------------------------------------------------------------------------


@dataclass
class Registry:
    """ECR in moto: repositories, images (by label) and their digests."""

    ecr: Any
    digests: dict[str, str]

    def reference(self, repository: str, tag: str) -> str:
        return f"{ECR_REGISTRY}/{repository}:{tag}"


def manifest(label: str) -> str:
    """An image manifest whose digest (in moto, a hash of its layers) differs per label."""
    layer = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, label).hex * 2
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": layer},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 7, "digest": layer}],
        }
    )


def set_scan_result(ecr: Any, repository: str, digest: str, status: str, counts: dict[str, int]) -> None:
    """Make ECR report a scan of `digest` (moto: a custom result for DescribeImageScanFindings)."""
    from moto.ecr.models import ecr_backends

    ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    ecr_backends[ECR_ACCOUNT][REGION].scan_finding_results.append(
        {
            "registryId": ECR_ACCOUNT,
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": "set by the test"},
            "imageScanFindings": {
                "imageScanCompletedAt": datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
                "findingSeverityCounts": counts,
            },
        }
    )


@pytest.fixture
def registry(stack: Stack) -> Registry:
    """shop/api: 1.0 + latest (passing scan), 2.0 (critical findings), one untagged image (never scanned);
    shop/web: main (FAILED scan); tools/empty: no images."""
    ecr = boto3.client("ecr", region_name=REGION)
    for name in ("shop/api", "shop/web", "tools/empty"):
        ecr.create_repository(repositoryName=name)
    digests: dict[str, str] = {}

    def push(repository: str, label: str, *tags: str) -> None:
        for tag in tags or (None,):
            kwargs = {"imageTag": tag} if tag else {}
            response = ecr.put_image(repositoryName=repository, imageManifest=manifest(label), **kwargs)
            digests[label] = response["image"]["imageId"]["imageDigest"]

    push("shop/api", "v1", "1.0", "latest")
    push("shop/api", "v2", "2.0")
    push("shop/api", "untagged")
    push("shop/web", "web", "main")
    set_scan_result(ecr, "shop/api", digests["v1"], "COMPLETE", {"HIGH": 1, "LOW": 4})
    set_scan_result(ecr, "shop/api", digests["v2"], "COMPLETE", {"CRITICAL": 2})
    set_scan_result(ecr, "shop/web", digests["web"], "FAILED", {})
    return Registry(ecr, digests)


def backfill_json(*args: str) -> dict[str, Any]:
    result = tagwarden("backfill", *args, "--json")
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_backfill_seeds_tags_untagged_images_and_scans_from_ecr(stack: Stack, registry: Registry) -> None:
    summary = backfill_json("--table", stack.table_name)

    assert summary == {
        "repositories": 3,
        "images": 4,
        "tags": {"recorded": 4},
        "untagged": {"recorded": 1},
        "scans": {"recorded": 3, "no scan": 1},
        "alerts": {"published": [], "would_alert": []},
    }
    table = ("--table", stack.table_name)
    assert tagwarden("pin", registry.reference("shop/api", "latest"), *table).stdout == (
        f"{ECR_REGISTRY}/shop/api@{registry.digests['v1']}\n"
    )
    assert tagwarden("check", registry.reference("shop/api", "1.0"), *table).exit_code == 0
    assert tagwarden("check", registry.reference("shop/api", "2.0"), *table).stdout.startswith("failing verdict: ")
    assert tagwarden("check", registry.reference("shop/web", "main"), *table).stdout.startswith("failed scan: ")
    untagged = tagwarden("check", f"{ECR_REGISTRY}/shop/api@{registry.digests['untagged']}", *table)
    assert untagged.stdout.startswith("unscanned: ")
    (entry,) = json.loads(tagwarden("history", registry.reference("shop/api", "latest"), *table, "--json").stdout)
    assert entry["event_id"].startswith("backfill-")
    assert (entry["action"], entry["digest"], entry["previous_digest"]) == ("PUSH", registry.digests["v1"], None)
    assert entry["scan"]["finding_counts"] == {"HIGH": 1, "LOW": 4}
    assert stack.received_alerts() == []


def test_backfill_again_is_idempotent(stack: Stack, registry: Registry) -> None:
    backfill_json("--table", stack.table_name)
    items = stack.items()

    again = backfill_json("--table", stack.table_name)

    assert again["tags"] == {"duplicate": 4}
    assert again["scans"] == {"duplicate": 3, "no scan": 1}
    assert again["alerts"] == {"published": [], "would_alert": []}
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in stack.items()) == sorted(
        (i["pk"]["S"], i["sk"]["S"]) for i in items
    )
    history = tagwarden("history", registry.reference("shop/api", "1.0"), "--table", stack.table_name, "--json")
    assert len(json.loads(history.stdout)) == 1
    assert stack.received_alerts() == []


def test_backfill_of_named_repositories_only(stack: Stack, registry: Registry) -> None:
    summary = backfill_json("shop/web", "--table", stack.table_name)

    assert (summary["repositories"], summary["images"], summary["tags"]) == (1, 1, {"recorded": 1})
    assert_one_line_error(tagwarden("backfill", "no/such", "--table", stack.table_name), 2, "repository not found")
    assert_one_line_error(tagwarden("backfill", "Bad Name", "--table", stack.table_name), 2, "bad image reference")


def test_backfill_skips_what_live_events_recorded_and_withholds_alerts_without_a_topic(
    stack: Stack, registry: Registry, push_guard: Handler, scan_recorder: Handler
) -> None:
    # The ledger already knows 1.0 on its current digest, and `latest` on a scanned digest ECR no longer has.
    live = {"account": ECR_ACCOUNT}
    push_guard(ecr_image_action(tag="1.0", digest=registry.digests["v1"], time="2020-01-01T00:00:00Z", **live))
    push_guard(ecr_image_action(tag="latest", digest=A, time="2020-01-01T00:00:00Z", **live))
    scan = ecr_scan(digest=A, tags=["latest"], time="2020-01-01T00:01:00Z")
    scan["account"] = ECR_ACCOUNT
    scan_recorder(scan)

    first = backfill_json("shop/api", "--table", stack.table_name)

    assert first["tags"] == {"already known": 1, "recorded": 2}
    (withheld,) = first["alerts"]["would_alert"]
    assert withheld["type"] == "TAG_MOVED_AFTER_SCAN"
    assert stack.received_alerts() == []
    history = tagwarden("history", registry.reference("shop/api", "1.0"), "--table", stack.table_name, "--json")
    assert [e["event_id"].startswith("backfill-") for e in json.loads(history.stdout)] == [False]

    # A run with the topic publishes what the first run withheld, once.
    published = backfill_json("shop/api", "--table", stack.table_name, "--topic-arn", stack.topic_arn)
    again = backfill_json("shop/api", "--table", stack.table_name, "--topic-arn", stack.topic_arn)

    assert published["alerts"] == {"published": [withheld["alert_id"]], "would_alert": []}
    assert again["alerts"] == {"published": [], "would_alert": []}
    assert [received.alert.alert_id for received in stack.received_alerts()] == [withheld["alert_id"]]


def test_backfill_with_stack_name_publishes_to_the_stacks_topic(
    stack: Stack, registry: Registry, push_guard: Handler
) -> None:
    create_cloudformation_stack("tagwarden", {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn})
    push_guard(ecr_image_action(tag="2.0", digest=A, time="2020-01-01T00:00:00Z", account=ECR_ACCOUNT))

    text = tagwarden("backfill", "shop/api", "--stack-name", "tagwarden")

    assert text.exit_code == 0, text.output
    assert "1 recorded" in text.stdout
    assert f"1 published to {stack.topic_arn}" in text.stdout
    (received,) = stack.received_alerts()
    assert (received.alert.type, received.alert.tag) == ("TAG_OVERWRITTEN", "2.0")


def test_backfill_no_publish_withholds_alerts_even_with_a_topic(
    stack: Stack, registry: Registry, push_guard: Handler
) -> None:
    create_cloudformation_stack("tagwarden", {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn})
    push_guard(ecr_image_action(tag="2.0", digest=A, time="2020-01-01T00:00:00Z", account=ECR_ACCOUNT))

    text = tagwarden("backfill", "shop/api", "--stack-name", "tagwarden", "--no-publish")

    assert text.exit_code == 0, text.output
    assert "1 would alert (not published: --no-publish)" in text.stdout
    assert stack.received_alerts() == []


def test_backfill_text_output_lists_what_would_alert(stack: Stack, registry: Registry, push_guard: Handler) -> None:
    push_guard(ecr_image_action(tag="2.0", digest=A, time="2020-01-01T00:00:00Z", account=ECR_ACCOUNT))

    result = tagwarden("backfill", "shop/api", "--table", stack.table_name)

    assert result.exit_code == 0, result.output
    assert "Backfilled 1 repositories, 3 images" in result.stdout
    assert "1 would alert (not published: no --topic-arn or --stack-name)" in result.stdout
    assert "would alert: tw-" in result.stdout and "TAG_OVERWRITTEN" in result.stdout
    assert stack.received_alerts() == []


def test_ecr_listing_takes_scan_summaries_from_describe_images_and_asks_only_when_needed() -> None:
    # What moto's DescribeImages does not return: ECR's own scan status and summary, stubbed.
    from botocore.stub import Stubber
    from tagwarden.adapters.ecr_registry import EcrRegistry
    from tagwarden.domain.images import ImageName
    from tagwarden.domain.registry import RegistryRepository
    from tagwarden.domain.scans import ScanStatus

    ecr = boto3.client("ecr", region_name=REGION)
    repository = RegistryRepository(ImageName(ECR_REGISTRY, "shop/api"), ECR_ACCOUNT, REGION)
    completed = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
    pushed = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    details = [
        {
            "imageDigest": A,
            "imageTags": ["1.0"],
            "imagePushedAt": pushed,
            "imageScanStatus": {"status": "COMPLETE"},
            "imageScanFindingsSummary": {"imageScanCompletedAt": completed, "findingSeverityCounts": {"HIGH": 2}},
        },
        {"imageDigest": B, "imagePushedAt": pushed, "imageScanStatus": {"status": "IN_PROGRESS"}},
        {"imageDigest": C, "imagePushedAt": pushed, "imageScanStatus": {"status": "ACTIVE"}},
    ]
    with Stubber(ecr) as stub:
        stub.add_response(
            "describe_images",
            {"imageDetails": details},
            {"registryId": ECR_ACCOUNT, "repositoryName": "shop/api"},
        )
        stub.add_response(
            "describe_image_scan_findings",
            {
                "imageScanStatus": {"status": "ACTIVE"},
                "imageScanFindings": {"findingSeverityCounts": {"UNTRIAGED": 1, "MEDIUM": 3}, "enhancedFindings": []},
            },
            {
                "registryId": ECR_ACCOUNT,
                "repositoryName": "shop/api",
                "imageId": {"imageDigest": C},
                "maxResults": 1,
            },
        )
        registry = EcrRegistry(ecr)
        listed, in_progress, enhanced = registry.images(repository)
        enhanced_scan = registry.scan_of(enhanced)
        stub.assert_no_pending_responses()

    assert listed.listed_scan is not None
    assert (listed.listed_scan.status, listed.listed_scan.scanner, listed.listed_scan.completed_at) == (
        ScanStatus.COMPLETE,
        "ecr-basic",
        completed,
    )
    assert listed.listed_scan.finding_counts == {"HIGH": 2}
    assert (in_progress.listed_scan, in_progress.scan_to_look_up) == (None, False)
    assert enhanced.scan_to_look_up
    assert enhanced_scan is not None
    # No completion time reported: the scan is placed at the push time, the same on every run.
    assert (enhanced_scan.status, enhanced_scan.scanner, enhanced_scan.completed_at) == (
        ScanStatus.COMPLETE,
        "inspector",
        pushed,
    )


# --- replay -------------------------------------------------------------------------------------------


def write_events(path: Path, events: list[dict[str, Any]], *, lines: bool = False) -> Path:
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n" if lines else json.dumps(events))
    return path


def test_replay_feeds_events_through_the_functions_and_reports_each_outcome(stack: Stack, tmp_path: Path) -> None:
    listed = write_events(
        tmp_path / "list.json",
        [
            ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"),
            ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z", event_id="s-1"),
        ],
    )
    jsonl = write_events(
        tmp_path / "more.jsonl",
        [ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2")],
        lines=True,
    )
    inspector = EVENTS / "scan_recorder" / "inspector_ecr_scan.json"

    result = tagwarden("replay", str(listed), str(jsonl), str(inspector), "--table", stack.table_name, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(e["function"], e["event_id"], e["outcome"]) for e in report["events"]] == [
        ("push-guard", "e-1", "recorded"),
        ("scan-recorder", "s-1", "recorded"),
        ("push-guard", "e-2", "recorded"),
        ("scan-recorder", "c1d9bc58-b8f8-4a82-bbc4-8ddd964b3898", "recorded"),
    ]
    (moved,) = report["alerts"]["would_alert"]
    assert moved["type"] == "TAG_MOVED_AFTER_SCAN"
    assert report["events"][2]["alerts"] == [moved["alert_id"]]
    assert stack.received_alerts() == []

    again = tagwarden("replay", str(listed), "--table", stack.table_name)
    assert again.exit_code == 0
    assert [line.rsplit(": ", 1)[-1] for line in again.stdout.splitlines()[:2]] == ["duplicate", "duplicate"]


def test_replay_with_a_topic_publishes_the_alerts(stack: Stack, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "events.json",
        [
            ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="e-1"),
            ecr_image_action(tag="main", digest=B, time="2026-11-20T10:05:00Z", event_id="e-2"),
        ],
    )

    result = tagwarden("replay", str(events), "--table", stack.table_name, "--topic-arn", stack.topic_arn)

    assert result.exit_code == 0, result.output
    (received,) = stack.received_alerts()
    assert f"e-2: recorded alerts: {received.alert.alert_id}" in result.stdout
    assert f"1 published to {stack.topic_arn}" in result.stdout


def test_replay_goes_on_past_invalid_and_unknown_events_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    bad = ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="bad")
    bad["detail"]["image-digest"] = "sha256:short"
    events = write_events(
        tmp_path / "mixed.json",
        [
            bad,
            {"source": "aws.s3", "detail-type": "Object Created", "id": "s3-1"},
            ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="good"),
        ],
    )

    result = tagwarden("replay", str(events), "--table", stack.table_name)

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "bad: invalid: invalid EcrImageActionEvent: ECR Image Action.detail.image-digest" in lines[0]
    assert "s3-1: unsupported (source 'aws.s3', detail-type 'Object Created')" in lines[1]
    assert lines[2].endswith("good: recorded")


def test_replay_of_a_file_that_is_not_json_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    good = write_events(tmp_path / "good.json", [ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z")])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json\n")

    result = tagwarden("replay", str(good), str(broken), "--table", stack.table_name)

    assert_one_line_error(result, 2, "broken.json:1: not JSON")
    assert tagwarden("check", f"{IMAGE}:main", "--table", stack.table_name).stdout.startswith("unknown tag")
    assert_one_line_error(tagwarden("replay", str(tmp_path / "missing.json")), 2, "cannot read")


# --- replay of EKS audit logs ------------------------------------------------------------------------

AUDIT_EVENTS = EVENTS / "audit_watcher"
SAMPLE_DELIVERY = AUDIT_EVENTS / "cloudwatch_logs_envelope.json"
# What the sample's kubelet reports running, started from shop/api:latest.
RUNNING = "sha256:73f18cb3123e143a4e0d3bb2247c9b99d86afde38cc67f8a6da11ac78b60e93c"
SAMPLE_LINES = ("deployment_create.json", "pod_create_request_response.json", "pod_status_patch_plain.json")


def scanned_latest(push_guard: Handler, scan_recorder: Handler, counts: dict[str, int]) -> None:
    push_guard(ecr_image_action(tag="latest", digest=RUNNING, time="2026-11-20T09:00:00Z"))
    scan_recorder(ecr_scan(digest=RUNNING, tags=["latest"], time="2026-11-20T09:01:00Z", counts=counts))


def decoded(envelope_file: Path) -> dict[str, Any]:
    """The subscription data of an envelope: base64, gzip, JSON."""
    data = json.loads(envelope_file.read_text())["awslogs"]["data"]
    payload: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(data)))
    return payload


# The sample deliveries' owner: the stack's own account, which `replay` must know to tell a member's cluster
# from the stack's own (TAGWARDEN_ACCOUNT_ID, or --stack-name's ledger table).
STACK_ACCOUNT: dict[str, str | None] = {"TAGWARDEN_ACCOUNT_ID": "111122223333"}


def replay_json(*args: str, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    result = tagwarden("replay", *args, "--json", env=STACK_ACCOUNT if env is None else env)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_replay_of_a_subscription_envelope_checks_it_as_the_audit_watcher_handler_does(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler
) -> None:
    # Given a ledger where the deployed tag's digest has a failing scan
    scanned_latest(push_guard, scan_recorder, {"CRITICAL": 1})
    stack.received_alerts()

    # When the sample delivery is replayed without a topic, then handled by the function itself
    report = replay_json(str(SAMPLE_DELIVERY), "--table", stack.table_name)
    handled = audit_watcher(load_event("audit_watcher/cloudwatch_logs_envelope.json"))

    # Then both checked the same lines and found the same findings
    assert handled["observations"] == 3 and len(handled["alerts"]) == 1  # one workload, one vulnerable digest
    (row,) = report["events"]
    assert row == {
        "event": f"{SAMPLE_DELIVERY}#1",
        "function": "audit-watcher",
        "event_id": decoded(SAMPLE_DELIVERY)["logEvents"][0]["id"],
        "outcome": "checked: 6 lines, 3 observations, 3 skipped (no_images 1, not_json 1, truncated_json 1)",
        "alerts": handled["alerts"],
        "ok": True,
        "audit": handled,
    }
    assert [alert["alert_id"] for alert in report["alerts"]["would_alert"]] == handled["alerts"]
    assert {alert["type"] for alert in report["alerts"]["would_alert"]} == {"VULNERABLE_IMAGE_DEPLOYED"}
    assert report["alerts"]["published"] == []
    # ... and what the replay withheld, the function published (once).
    assert [received.alert.alert_id for received in stack.received_alerts()] == handled["alerts"]


def test_replay_prints_what_the_audit_watcher_checked(
    stack: Stack, push_guard: Handler, scan_recorder: Handler
) -> None:
    scanned_latest(push_guard, scan_recorder, {"LOW": 1})
    control = AUDIT_EVENTS / "cloudwatch_logs_control_message.json"

    result = tagwarden("replay", str(SAMPLE_DELIVERY), str(control), "--table", stack.table_name, env=STACK_ACCOUNT)

    assert result.exit_code == 0, result.output
    first_id = decoded(SAMPLE_DELIVERY)["logEvents"][0]["id"]
    assert result.stdout.splitlines() == [
        f"{SAMPLE_DELIVERY}#1 audit-watcher {first_id}: "
        "checked: 6 lines, 3 observations, 3 skipped (no_images 1, not_json 1, truncated_json 1)",
        f"{control}#1 audit-watcher -: checked: 0 lines, 0 observations, 1 skipped (control_message 1)",
        "  alerts:   none",
    ]


def test_replay_of_decoded_subscription_data_takes_the_same_path_as_the_envelope(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, tmp_path: Path
) -> None:
    scanned_latest(push_guard, scan_recorder, {"LOW": 1})
    data = tmp_path / "decoded.json"
    data.write_text(json.dumps(decoded(SAMPLE_DELIVERY)))

    report = replay_json(str(SAMPLE_DELIVERY), str(data), "--table", stack.table_name)

    envelope_row, data_row = report["events"]
    assert data_row["event"] == f"{data}#1"
    assert {k: v for k, v in data_row.items() if k != "event"} == {
        k: v for k, v in envelope_row.items() if k != "event"
    }
    assert data_row["audit"]["skipped"] == {"no_images": 1, "not_json": 1, "truncated_json": 1}


def test_replay_reports_an_undecodable_delivery_as_invalid(stack: Stack, tmp_path: Path) -> None:
    broken = write_events(tmp_path / "broken.json", [{"awslogs": {"data": "not base64 gzip"}}])

    result = tagwarden("replay", str(broken), "--table", stack.table_name)

    assert result.exit_code == 1
    assert "audit-watcher -: invalid: invalid SubscriptionDelivery: awslogs.data" in result.stdout


def write_audit_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    """Raw audit lines, as kube-apiserver writes its audit log: one compact JSON event per line."""
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    return path


def test_replay_of_raw_audit_lines_delivers_them_as_the_clusters_subscription_would(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, audit_watcher: Handler, tmp_path: Path
) -> None:
    # Given a failing scan of the deployed digest, and the cluster's audit log as a file
    scanned_latest(push_guard, scan_recorder, {"CRITICAL": 1})
    stack.received_alerts()
    lines = [audit_line(name) for name in SAMPLE_LINES]
    log = write_audit_lines(tmp_path / "audit.log", lines)

    # When it is replayed for the cluster, then the function gets the same lines in a delivery
    report = replay_json(str(log), "--cluster", "prod-eks", "--table", stack.table_name)
    handled = audit_watcher(envelope(lines, cluster="prod-eks"))

    # Then the file's lines were one delivery, checked as the function checks it
    (row,) = report["events"]
    assert (row["event"], row["function"], row["ok"]) == (f"{log}#1-3", "audit-watcher", True)
    assert row["event_id"] == lines[0]["auditID"]
    assert row["outcome"] == "checked: 3 lines, 3 observations, 0 skipped"
    assert row["audit"] == handled
    assert handled["cluster"] == "prod-eks" and len(handled["alerts"]) == 1
    received = stack.received_alerts()
    assert sorted(r.alert.alert_id for r in received) == sorted(handled["alerts"])
    assert {r.alert.kubernetes.cluster for r in received if r.alert.kubernetes} == {"prod-eks"}


def test_replay_groups_consecutive_raw_audit_lines_of_a_file(stack: Stack, tmp_path: Path) -> None:
    deployment, pod, status = (audit_line(name) for name in SAMPLE_LINES)
    push = ecr_image_action(tag="latest", digest=RUNNING, time="2026-11-20T09:00:00Z", event_id="p-1")
    mixed = write_events(tmp_path / "mixed.jsonl", [deployment, pod, push, status], lines=True)
    more = write_audit_lines(tmp_path / "more.log", [status])

    report = replay_json(str(mixed), str(more), "--cluster", "prod-eks", "--table", stack.table_name)

    assert [(e["event"], e["function"], e["outcome"].split(",")[0]) for e in report["events"]] == [
        (f"{mixed}#1-2", "audit-watcher", "checked: 2 lines"),
        (f"{mixed}#3", "push-guard", "recorded"),
        (f"{mixed}#4", "audit-watcher", "checked: 1 lines"),
        (f"{more}#1", "audit-watcher", "checked: 1 lines"),
    ]


def test_raw_audit_lines_are_delivered_in_chunks_of_at_most_10000() -> None:
    from tagwarden.cli.replay import AUDIT_LINES_PER_DELIVERY, deliveries

    lines = [audit_line("pod_create_request.json") for _ in range(5)]
    push = ecr_image_action(tag="latest", digest=RUNNING, time="2026-11-20T09:00:00Z")
    path = Path("audit.log")

    replayable = deliveries(path, [*lines, push], "prod-eks", lines_per_delivery=2)

    assert AUDIT_LINES_PER_DELIVERY == 10_000
    assert [origin for origin, _ in replayable] == ["audit.log#1-2", "audit.log#3-4", "audit.log#5", "audit.log#6"]
    first = json.loads(gzip.decompress(base64.b64decode(replayable[0][1]["awslogs"]["data"])))
    assert (first["messageType"], first["logGroup"], len(first["logEvents"])) == (
        "DATA_MESSAGE",
        "/aws/eks/prod-eks/cluster",
        2,
    )
    assert json.loads(first["logEvents"][0]["message"]) == lines[0]
    assert replayable[3][1] == push


def test_raw_audit_lines_need_a_cluster(stack: Stack, tmp_path: Path) -> None:
    push = ecr_image_action(tag="latest", digest=RUNNING, time="2026-11-20T09:00:00Z")
    log = write_events(tmp_path / "audit.jsonl", [push, audit_line("deployment_create.json")], lines=True)

    missing = tagwarden("replay", str(log), "--table", stack.table_name)
    bad = tagwarden("replay", str(log), "--cluster", "prod/eks", "--table", stack.table_name)

    assert_one_line_error(missing, 2, f"{log}#2", "--cluster NAME")
    assert_one_line_error(bad, 2, "'prod/eks' is not an EKS cluster name")
    assert stack.items() == []  # nothing replayed, not even the push before the lines


def test_replayed_findings_are_withheld_without_a_topic_then_published_once(stack: Stack) -> None:
    # Given an empty ledger: the sample's tag and running digest are unscanned.
    table = ("--table", stack.table_name)

    # A run without publishing (here with the delivery twice) records the findings, publishes nothing...
    text = tagwarden(
        "replay",
        str(SAMPLE_DELIVERY),
        str(SAMPLE_DELIVERY),
        *table,
        "--topic-arn",
        stack.topic_arn,
        "--no-publish",
        env=STACK_ACCOUNT,
    )
    withheld = replay_json(str(SAMPLE_DELIVERY), *table)

    assert text.exit_code == 0, text.output
    assert "2 would alert (not published: --no-publish)" in text.stdout
    assert text.stdout.count("would alert: tw-") == 2
    would_alert = withheld["alerts"]["would_alert"]
    assert {alert["type"] for alert in would_alert} == {"UNSCANNED_IMAGE_DEPLOYED"}
    assert withheld["events"][0]["alerts"] == [alert["alert_id"] for alert in would_alert]
    findings = [item for item in stack.items() if item.get("kind", {}).get("S") == "finding"]
    assert len(findings) == 2
    assert all(item["alerts_delivered"] == {"BOOL": False} for item in findings)
    assert stack.received_alerts() == []

    # ... a run with the topic publishes them, and the next one has nothing left to publish.
    published = replay_json(str(SAMPLE_DELIVERY), *table, "--topic-arn", stack.topic_arn)
    again = replay_json(str(SAMPLE_DELIVERY), *table, "--topic-arn", stack.topic_arn)

    assert published["alerts"] == {"published": [a["alert_id"] for a in would_alert], "would_alert": []}
    assert again["alerts"] == {"published": [], "would_alert": []}
    assert again["events"][0]["outcome"] == published["events"][0]["outcome"]
    assert sorted(r.alert.alert_id for r in stack.received_alerts()) == sorted(a["alert_id"] for a in would_alert)


def test_replay_checks_the_extra_monitored_registries_of_the_environment(stack: Stack, tmp_path: Path) -> None:
    log = write_audit_lines(
        tmp_path / "audit.log", [with_images(audit_line("deployment_create.json"), "docker.io/library/nginx:1.27")]
    )
    args = (str(log), "--cluster", "prod-eks", "--table", stack.table_name)

    ecr_only = replay_json(*args)
    watching_docker_hub = replay_json(*args, env={"EXTRA_MONITORED_REGISTRIES": "docker.io, ghcr.io"})
    push = write_events(tmp_path / "push.json", [ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z")])
    invalid = tagwarden("replay", str(push), *args, env={"EXTRA_MONITORED_REGISTRIES": "not a host"})

    assert ecr_only["events"][0]["audit"]["observations"] == 0
    assert watching_docker_hub["events"][0]["audit"]["observations"] == 1
    (alert,) = watching_docker_hub["alerts"]["would_alert"]
    assert alert["type"] == "UNSCANNED_IMAGE_DEPLOYED"
    assert_one_line_error(invalid, 2, "EXTRA_MONITORED_REGISTRIES", "not a valid registry host")
    assert not [item for item in stack.items() if item["pk"]["S"].startswith("TAG#")]  # stopped before the push


# --- the command itself ---------------------------------------------------------------------------------


def test_help_lists_the_commands_and_the_exit_codes() -> None:
    result = tagwarden("--help")

    assert result.exit_code == 0
    for command in ("history", "check", "pin", "backfill", "replay"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_importing_the_cli_does_not_import_boto3() -> None:
    probe = "import sys, tagwarden.cli, tagwarden.cli.main; print(sorted({'boto3', 'botocore'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout

    assert output.strip() == "[]"


# --- review fixes ----------------------------------------------------------------------------------


def test_backfill_repairs_a_pointer_after_a_missed_move(stack: Stack, registry: Registry, push_guard: Handler) -> None:
    # Live: shop/api:latest named other content, pushed after the image ECR now shows under the tag; the
    # event that moved the tag back to that image was missed.
    moved_away = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
    push_guard(ecr_image_action(tag="latest", digest=A, time=moved_away, account=ECR_ACCOUNT) | {"region": REGION})
    table = ("--table", stack.table_name)

    backfill_json(*table)

    pinned = tagwarden("pin", registry.reference("shop/api", "latest"), *table)
    assert pinned.stdout == f"{ECR_REGISTRY}/shop/api@{registry.digests['v1']}\n", pinned.output
    again = backfill_json(*table)
    assert again["alerts"] == {"published": [], "would_alert": []}


def test_replay_takes_the_records_of_a_failure_queue(stack: Stack, tmp_path: Path) -> None:
    event = ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z", event_id="from-dlq")
    record = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
    result = tagwarden("replay", str(write_events(tmp_path / "dlq.json", [record])), "--table", stack.table_name)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("from-dlq: recorded")


def test_replay_goes_on_past_events_of_strange_shapes(stack: Stack, tmp_path: Path) -> None:
    inspector = load_event("scan_recorder/inspector_ecr_scan.json")
    inspector["detail"]["repository-name"] = "arn:aws:ecr:eu-west-1a:111122223333:repository/shop/api"
    events = [{"source": ["aws.ecr"], "detail-type": "ECR Image Action", "id": "list-source"}, inspector]
    result = tagwarden("replay", str(write_events(tmp_path / "odd.json", events)), "--table", stack.table_name)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert "list-source: unsupported" in lines[0]
    assert "invalid: not an AWS account and region" in lines[1]


def test_an_endpoint_without_a_scheme_is_a_usage_error(stack: Stack) -> None:
    result = tagwarden("check", f"{REGISTRY}/shop/api:latest", "--table", "t", "--endpoint-url", "localhost:4566")
    assert_one_line_error(result, 2, "endpoint")


def test_aws_region_is_honoured(stack: Stack) -> None:
    result = tagwarden(
        "check", f"{REGISTRY}/shop/api:latest", "--table", stack.table_name,
        env={"AWS_DEFAULT_REGION": None, "AWS_REGION": REGION},
    )  # fmt: skip
    assert result.exit_code == 1  # refused (unknown tag), not "no region"
    assert "unknown" in result.output


def test_with_a_stack_the_policy_is_the_stacks_parameters(stack: Stack, tmp_path: Path) -> None:
    create_cloudformation_stack(
        "strict",
        {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn},
        {"FailSeverity": "HIGH", "ProtectedTagPatterns": "v*", "MutableTagPatterns": "latest"},
    )
    events = write_events(
        tmp_path / "scan.json",
        [
            ecr_image_action(tag="main", digest=A, time="2026-11-20T10:00:00Z"),
            ecr_scan(digest=A, tags=["main"], time="2026-11-20T10:01:00Z", counts={"HIGH": 5}),
        ],
    )

    result = tagwarden("replay", str(events), "--stack-name", "strict", "--no-publish", env={"FAIL_SEVERITY": None})

    assert result.exit_code == 0, result.output
    refused = tagwarden("check", f"{IMAGE}:main", "--stack-name", "strict")
    assert refused.exit_code == 1  # HIGH findings fail under the stack's FailSeverity, whatever the shell says
    assert "fail" in refused.output


def test_replay_routes_pull_through_cache_and_replication_events_to_the_push_guard(stack: Stack) -> None:
    samples = [EVENTS / "push_guard" / name for name in ("pull_through_cache_sync.json", "replication_success.json")]

    result = tagwarden("replay", *map(str, samples), "--table", stack.table_name, "--json")

    assert result.exit_code == 0, result.output
    assert [(e["function"], e["outcome"]) for e in json.loads(result.stdout)["events"]] == [
        ("push-guard", "recorded"),
        ("push-guard", "recorded"),
    ]
