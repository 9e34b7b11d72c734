"""The read side with image indexes: history, check and pin (what `tagwarden history/check/pin` show), and the
backfill seeding multi-platform images from moto's ECR through the same services as live events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
import pytest
from tagwarden.adapters.alert_collector import AlertCollector
from tagwarden.adapters.dynamodb.reader import DynamoDbLedgerReader
from tagwarden.adapters.dynamodb.table import LedgerTable
from tagwarden.adapters.ecr_registry import EcrRegistry
from tagwarden.config import DetectionConfig
from tagwarden.domain.images import ImageName, parse_reference
from tagwarden.domain.refusals import Refusal
from tagwarden.domain.tags import TagRef
from tagwarden.services.alert_delivery import DeliveryMode
from tagwarden.services.backfill import Backfill
from tagwarden.services.ledger_queries import LedgerQueries
from tagwarden.services.wiring import alert_delivery, compose_push_guard, compose_scan_recorder

from tests.support.events import ecr_scan
from tests.support.handlers import Handler
from tests.support.multiarch import build, build_pushes, put_build
from tests.support.stack import REGION, Stack

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

LIVE = ImageName("111122223333.dkr.ecr.eu-west-1.amazonaws.com", "shop/api")
MOTO_ACCOUNT = "123456789012"
MOTO = ImageName(f"{MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com", "shop/api")


@pytest.fixture
def ecr(stack: Stack) -> ECRClient:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="shop/api")
    return client


@pytest.fixture
def queries(stack: Stack) -> LedgerQueries:
    return LedgerQueries(DynamoDbLedgerReader(LedgerTable(stack.dynamodb, stack.table_name)))


def test_history_check_and_pin_of_a_tag_naming_a_scanned_index(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler, queries: LedgerQueries
) -> None:
    pushed = build("api 6.0.0")
    put_build(ecr, "shop/api", pushed, tag="6.0.0")
    for event in build_pushes(pushed, "6.0.0", "2026-11-20T13:00:00Z"):
        push_guard(event)
    scan_recorder(ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time="2026-11-20T13:00:30Z", counts={}))

    reference = parse_reference(f"{LIVE}:6.0.0")
    refused = queries.check(reference)
    assert refused.refusal is Refusal.UNSCANNED
    assert refused.reason.endswith("(an image index; platforms without a completed scan: linux/arm64)")

    scan_recorder(ecr_scan(digest=pushed.digest("linux/arm64"), tags=[], time="2026-11-20T13:00:31Z", counts={}))

    result = queries.check(reference)
    assert result.passed, result.reason
    assert result.pinned == f"{LIVE}@{pushed.index_digest}"  # the index: every platform keeps working
    assert queries.check(parse_reference(f"{LIVE}@{pushed.index_digest}")).passed
    assert queries.check(parse_reference(f"{LIVE}@{pushed.digest('linux/arm64')}")).passed
    (entry,) = queries.tag_history(TagRef(LIVE, "6.0.0")) or []
    assert entry.index is not None and entry.scan is not None and entry.scan.passing
    assert [(c.platform, c.attestation) for c in entry.index.children] == [
        ("linux/amd64", False),
        ("linux/arm64", False),
        ("unknown/unknown", True),
        ("unknown/unknown", True),
    ]
    assert set(entry.platform_scans) == {pushed.digest("linux/amd64"), pushed.digest("linux/arm64")}


def test_backfill_records_an_index_and_its_platforms_scans_from_ecr(
    stack: Stack, ecr: ECRClient, queries: LedgerQueries
) -> None:
    from moto.ecr.models import ecr_backends

    pushed = build("api 7.0.0")
    put_build(ecr, "shop/api", pushed, tag="7.0.0")
    for platform in pushed.platforms:
        digest = pushed.digest(platform)
        ecr.start_image_scan(repositoryName="shop/api", imageId={"imageDigest": digest})
        ecr_backends[MOTO_ACCOUNT][REGION].scan_finding_results.append(
            {
                "registryId": MOTO_ACCOUNT,
                "repositoryName": "shop/api",
                "imageId": {"imageDigest": digest},
                "imageScanStatus": {"status": "COMPLETE", "description": "set by the test"},
                "imageScanFindings": {
                    "imageScanCompletedAt": datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
                    "findingSeverityCounts": {"MEDIUM": 2},
                },
            }
        )
    table = LedgerTable(stack.dynamodb, stack.table_name)
    registry = EcrRegistry(ecr)
    delivery = alert_delivery(table, AlertCollector(), DeliveryMode.WITHHOLD)
    config = DetectionConfig()
    backfill = Backfill(
        registry,
        DynamoDbLedgerReader(table),
        compose_push_guard(table, delivery, config, manifests=registry),
        compose_scan_recorder(table, delivery, config),
    )

    (repository,) = backfill.repositories(["shop/api"])
    for image in backfill.images(repository):
        backfill.seed(image)

    result = queries.check(parse_reference(f"{MOTO}:7.0.0"))
    assert result.passed, result.reason
    assert result.pinned == f"{MOTO}@{pushed.index_digest}"


def test_tagwarden_history_shows_an_index_platforms_and_their_scans(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    import json

    from tagwarden.cli.main import app
    from typer.testing import CliRunner

    pushed = build("api 6.1.0")
    put_build(ecr, "shop/api", pushed, tag="6.1.0")
    for event in build_pushes(pushed, "6.1.0", "2026-11-20T14:00:00Z"):
        push_guard(event)
    scan_recorder(ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time="2026-11-20T14:00:30Z", counts={}))
    runner = CliRunner()
    args = ["history", f"{LIVE}:6.1.0", "--table", stack.table_name, "--region", REGION]

    (entry,) = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    table = runner.invoke(app, args, env={"COLUMNS": "100"}).stdout

    platforms = {p["platform"]: p["scan"] for p in entry["index"]["platforms"]}
    assert set(platforms) == {"linux/amd64", "linux/arm64"}
    assert platforms["linux/amd64"] is not None and platforms["linux/arm64"] is None
    assert len(entry["index"]["attestations"]) == 2
    assert "amd64 ok" in table and "arm64 ?" in table and "+2 attestations" in table


def test_tagwarden_check_and_pin_of_a_tag_naming_an_index_through_the_command(
    stack: Stack, ecr: ECRClient, push_guard: Handler, scan_recorder: Handler
) -> None:
    import json

    from tests.integration.test_cli import tagwarden

    pushed = build("api 6.2.0")
    put_build(ecr, "shop/api", pushed, tag="6.2.0")
    for event in build_pushes(pushed, "6.2.0", "2026-11-20T15:00:00Z"):
        push_guard(event)
    scan_recorder(ecr_scan(digest=pushed.digest("linux/amd64"), tags=[], time="2026-11-20T15:00:30Z", counts={}))
    table = ["--table", stack.table_name, "--region", REGION]
    reference = f"{LIVE}:6.2.0"

    # One platform still unscanned: the CI gate is refused and says which platform.
    refused_check = tagwarden("check", reference, *table)
    refused_pin = tagwarden("pin", reference, *table)
    refused_json = tagwarden("check", reference, *table, "--json")

    assert refused_check.exit_code == 1, refused_check.output
    assert refused_check.stdout.startswith(f"unscanned: {LIVE}@{pushed.index_digest}")
    assert "platforms without a completed scan: linux/arm64" in refused_check.stdout
    assert (refused_pin.exit_code, refused_pin.stdout) == (1, "")
    assert refused_pin.stderr.startswith("tagwarden: refused: unscanned: ")
    assert "linux/arm64" in refused_pin.stderr
    answer = json.loads(refused_json.stdout)
    assert (answer["passed"], answer["refusal"], answer["digest"], answer["pinned"]) == (
        False,
        "unscanned",
        pushed.index_digest,
        None,
    )

    scan_recorder(ecr_scan(digest=pushed.digest("linux/arm64"), tags=[], time="2026-11-20T15:00:31Z", counts={}))

    passed = tagwarden("check", reference, *table)
    pinned = tagwarden("pin", reference, *table)
    by_platform = tagwarden("check", f"{LIVE}@{pushed.digest('linux/arm64')}", *table)

    assert passed.exit_code == 0, passed.output
    assert passed.stdout.startswith(f"passed: {LIVE}@{pushed.index_digest} ")
    # pin keeps the index digest, so every platform still resolves.
    assert (pinned.exit_code, pinned.stdout) == (0, f"{LIVE}@{pushed.index_digest}\n")
    assert by_platform.exit_code == 0, by_platform.output
