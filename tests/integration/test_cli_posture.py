"""`tagwarden posture` against moto's ECR: every repository, its setting, the gaps and the commands that close them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.test_cli import tagwarden

REGION = "eu-west-1"


@pytest.fixture
def ecr() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ecr", region_name=REGION)


def repository(ecr: Any, name: str, mutability: str, filters: tuple[str, ...] = ()) -> None:
    kwargs: dict[str, Any] = {"repositoryName": name, "imageTagMutability": mutability}
    if filters:
        kwargs["imageTagMutabilityExclusionFilters"] = [{"filterType": "WILDCARD", "filter": f} for f in filters]
    ecr.create_repository(**kwargs)


def test_posture_lists_gaps_with_the_command_that_closes_each(ecr: Any) -> None:
    repository(ecr, "shop/api", "IMMUTABLE_WITH_EXCLUSION", ("latest",))
    repository(ecr, "shop/web", "MUTABLE")
    repository(ecr, "shop/worker", "IMMUTABLE_WITH_EXCLUSION", ("latest", "v*"))
    repository(ecr, "tools/ci", "IMMUTABLE")

    result = tagwarden("--json", "posture", "--region", REGION)

    assert result.exit_code == 1, result.output  # gaps exist
    report = json.loads(result.stdout)
    rows = {row["repository"]: row for row in report["repositories"]}
    assert report["gaps"] == 2
    assert [name for name, row in rows.items() if row["protected_tags_can_move"]] == ["shop/web", "shop/worker"]
    assert rows["shop/worker"]["exclusion_filters"] == ["latest", "v*"]
    assert rows["shop/worker"]["exposed_patterns"] == ["v[0-9]*.[0-9]*"]
    assert rows["shop/worker"]["fix"] == (
        "aws ecr put-image-tag-mutability --repository-name shop/worker --registry-id 123456789012 "
        "--region eu-west-1 --image-tag-mutability IMMUTABLE_WITH_EXCLUSION "
        "--image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=latest"
    )
    assert rows["shop/api"]["fix"] is None and rows["tools/ci"]["fix"] is None


def test_applying_the_printed_fix_closes_the_gap(ecr: Any) -> None:
    repository(ecr, "shop/web", "MUTABLE")
    fix = json.loads(tagwarden("--json", "posture", "--region", REGION).stdout)["repositories"][0]["fix"]
    assert "--image-tag-mutability IMMUTABLE_WITH_EXCLUSION" in fix
    ecr.put_image_tag_mutability(
        repositoryName="shop/web",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
    )

    result = tagwarden("posture", "--region", REGION)

    assert result.exit_code == 0, result.output
    assert "1 repositories, 0 with protected tags that can be overwritten" in result.stdout


def test_posture_reads_every_page(ecr: Any) -> None:
    for number in range(120):  # DescribeRepositories pages at 100
        repository(ecr, f"team/app-{number:03d}", "IMMUTABLE")
    result = tagwarden("--json", "posture", "--region", REGION)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["repositories"]) == 120


def test_the_text_output_names_each_gap_and_its_fix(ecr: Any) -> None:
    repository(ecr, "shop/web", "MUTABLE")
    result = tagwarden("posture", "--region", REGION)
    assert result.exit_code == 1
    assert "shop/web  MUTABLE  PROTECTED TAGS CAN MOVE" in result.stdout
    assert "fix: aws ecr put-image-tag-mutability --repository-name shop/web" in result.stdout


def test_the_policy_comes_from_the_environment(ecr: Any) -> None:
    repository(ecr, "shop/api", "IMMUTABLE_WITH_EXCLUSION", ("release-*",))
    result = tagwarden("--json", "posture", "--region", REGION, env={"PROTECTED_TAG_PATTERNS": "release-*"})
    assert result.exit_code == 1
    assert json.loads(result.stdout)["repositories"][0]["exposed_patterns"] == ["release-*"]


def test_an_aws_error_is_one_line_and_exit_3(ecr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.stub import Stubber
    from tagwarden.adapters.ecr_registry import EcrRegistry
    from tagwarden.cli.runtime import Runtime

    client = boto3.client("ecr", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("describe_repositories", "AccessDeniedException", "not authorized", 400)
    stubber.activate()
    monkeypatch.setattr(Runtime, "registry", lambda self: EcrRegistry(client))

    result = tagwarden("posture", "--region", REGION)

    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "tagwarden: error: DescribeRepositories failed: AccessDeniedException"
