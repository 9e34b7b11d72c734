"""Image references per the distribution grammar; everything that reaches a ledger key is validated."""

from __future__ import annotations

import pytest
from tagwarden.domain.images import (
    ImageName,
    InvalidReferenceError,
    ecr_registry,
    is_ecr_registry,
    parse_reference,
    validate_digest,
    validate_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None),
        ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", None),
        ("registry.example.com:8443/app", "registry.example.com:8443", "app", "latest", None),
        (
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop/api:1.4.0",
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com",
            "shop/api",
            "1.4.0",
            None,
        ),
        (f"ghcr.io/org/app@{DIGEST}", "ghcr.io", "org/app", None, DIGEST),
        (f"ghcr.io/org/app:v1@{DIGEST}", "ghcr.io", "org/app", "v1", DIGEST),
    ],
)
def test_parse_reference(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    reference = parse_reference(text)
    assert (reference.name.registry, reference.name.repository) == (registry, repository)
    assert (reference.tag, reference.digest) == (tag, digest)
    assert reference.pins_digest is (digest is not None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER/case",
        "repo:",
        "repo:-bad",
        "repo@sha256:short",
        "repo@md5:" + "a" * 32,
        "a" * 5000,
        "shop/api:latest#TAG",
        "shop/api|x",
        "shop//api",
        "shop/api:lat est",
    ],
)
def test_invalid_references_are_rejected(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_tags_and_digests_cannot_carry_key_separators() -> None:
    for bad in ("a#b", "a|b", "a:b", "a@b", "é", "a\nb", "", "x" * 129, ".hidden"):
        with pytest.raises(InvalidReferenceError):
            validate_tag(bad)
    with pytest.raises(InvalidReferenceError):
        validate_digest("sha256:" + "AB" * 32)
    assert validate_tag("v1.2.3_rc-1") == "v1.2.3_rc-1"


def test_ecr_registry_names_account_and_region() -> None:
    assert ecr_registry("111122223333", "eu-west-1") == "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
    assert ecr_registry("111122223333", "cn-north-1").endswith(".amazonaws.com.cn")
    assert is_ecr_registry("111122223333.dkr.ecr.us-east-1.amazonaws.com")
    assert not is_ecr_registry("docker.io")
    with pytest.raises(InvalidReferenceError):
        ecr_registry("1234", "eu-west-1")


def test_image_name_validates_on_construction() -> None:
    with pytest.raises(InvalidReferenceError):
        ImageName("docker.io", "Shop/API")
    assert str(ImageName("docker.io", "library/nginx")) == "docker.io/library/nginx"


def test_ecr_fips_hosts_name_the_same_registry() -> None:
    reference = parse_reference(f"111122223333.dkr.ecr-fips.us-east-1.amazonaws.com/shop/api@{DIGEST}")
    assert reference.name.registry == "111122223333.dkr.ecr.us-east-1.amazonaws.com"
