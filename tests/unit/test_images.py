"""Image references per the distribution grammar; everything that reaches a ledger key is validated."""

from __future__ import annotations

import pytest
from tagwarden.domain.images import (
    ImageName,
    InvalidReferenceError,
    canonical_registry,
    ecr_host_parts,
    ecr_registry,
    is_ecr_registry,
    is_local_image_id,
    looks_like_ecr,
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


# Every host kubernetes/cloud-provider-aws's ECR credential provider accepts in its tests (main_test.go),
# with the canonical host the ledger's keys use for it.
ECR_HOST_FORMS = [
    ("123456789123.dkr.ecr.us-west-2.amazonaws.com", "123456789123.dkr.ecr.us-west-2.amazonaws.com"),
    ("123456789123.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789123.dkr.ecr.cn-north-1.amazonaws.com.cn"),
    ("123456789123.dkr.ecr.us-gov-east-1.amazonaws.com", "123456789123.dkr.ecr.us-gov-east-1.amazonaws.com"),
    ("123456789123.dkr.ecr.us-iso-east-1.c2s.ic.gov", "123456789123.dkr.ecr.us-iso-east-1.c2s.ic.gov"),
    ("123456789123.dkr.ecr.eusc-de-east-1.amazonaws.eu", "123456789123.dkr.ecr.eusc-de-east-1.amazonaws.eu"),
    ("123456789123.dkr-ecr.us-west-2.on.aws", "123456789123.dkr.ecr.us-west-2.amazonaws.com"),
    ("123456789123.dkr-ecr-fips.us-west-2.on.aws", "123456789123.dkr.ecr.us-west-2.amazonaws.com"),
    ("123456789123.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", "123456789123.dkr.ecr.cn-north-1.amazonaws.com.cn"),
    ("123456789123.dkr-ecr.us-gov-east-1.on.aws", "123456789123.dkr.ecr.us-gov-east-1.amazonaws.com"),
    ("123456789123.dkr-ecr-fips.us-gov-east-1.on.aws", "123456789123.dkr.ecr.us-gov-east-1.amazonaws.com"),
    ("123456789012.dkr.ecr-fips.lala-land-1.amazonaws.com", "123456789012.dkr.ecr.lala-land-1.amazonaws.com"),
    ("123456789012.dkr.ecr-fips.eusc-de-east-1.amazonaws.eu", "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"),
    ("123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"),
    ("123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk"),
    ("123456789012.dkr.ecr.us-isof-east-1.csp.hci.ic.gov", "123456789012.dkr.ecr.us-isof-east-1.csp.hci.ic.gov"),
    # An explicit HTTPS port and any letter case reach the same registry.
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
    ("123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
    ("123456789012.Dkr-Ecr-Fips.us-east-1.On.Aws:443", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
]


@pytest.mark.parametrize(("host", "canonical"), ECR_HOST_FORMS)
def test_every_hostname_of_an_ecr_registry_is_the_same_registry(host: str, canonical: str) -> None:
    reference = parse_reference(f"{host}/shop/api:1.4.0")

    assert reference.name.registry == canonical
    assert is_ecr_registry(host)
    assert canonical_registry(host) == canonical
    assert not looks_like_ecr(host)
    account, region = ecr_host_parts(host)
    assert account is not None and region is not None
    # Events name a registry by account and region: both roads lead to the same ledger key.
    assert ecr_registry(account, region) == canonical


@pytest.mark.parametrize(
    "host",
    [
        # Rejected by the credential provider's tests: wrong account length, not digits, lookalike suffixes.
        "1234567891234.dkr.ecr.us-west-2.amazonaws.com",
        "12345678912.dkr.ecr.us-west-2.amazonaws.com",
        "abcdefghijkl.dkr.ecr.us-west-2.amazonaws.com",
        "123456789012.dkr.ecr.us-west-2.amazonaws.hacker.com",
        "123456789012.dkr.ecr.us-west-2.amazonaws.lol",
        "123456789012.dkr.ecr.us-iso-east-1.amazonaws.gov",
        # A partition's suffix with another partition's region is no AWS endpoint.
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
        "123456789012.dkr-ecr.eusc-de-east-1.on.aws",
    ],
)
def test_hosts_that_look_like_ecr_but_are_not_a_known_form_are_told_apart(host: str) -> None:
    assert not is_ecr_registry(host)
    assert looks_like_ecr(host)
    assert canonical_registry(host) == host
    assert ecr_host_parts(host) == (None, None)


@pytest.mark.parametrize("host", ["docker.io", "ghcr.io", "public.ecr.aws", "ecr-public.aws.com", "dog.ecr", "dkr.cat"])
def test_other_registries_are_neither_ecr_nor_lookalikes(host: str) -> None:
    assert not is_ecr_registry(host)
    assert not looks_like_ecr(host)


def test_ecr_registry_uses_each_partitions_dns_suffix() -> None:
    assert ecr_registry("877088126301", "eusc-de-east-1") == "877088126301.dkr.ecr.eusc-de-east-1.amazonaws.eu"
    assert ecr_registry("111122223333", "us-isob-east-1").endswith(".sc2s.sgov.gov")
    assert ecr_registry("013241004608", "us-gov-west-1") == "013241004608.dkr.ecr.us-gov-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("sha256:" + "ab" * 32, True),
        ("ab" * 32, True),
        ("sha256:" + "AB" * 32, False),
        ("sha256:" + "ab" * 31, False),
        ("sha512:" + "ab" * 64, False),
        ("nginx@sha256:" + "ab" * 32, False),
        ("sha256", False),
    ],
)
def test_a_runtimes_local_image_id_is_told_from_a_reference(text: str, local: bool) -> None:
    # Admission refuses these and the audit watcher looks up the pod's spec for them: both use this test.
    assert is_local_image_id(text) is local


def test_the_ecr_host_cache_is_bounded_and_keeps_one_answer_per_host() -> None:
    """Hosts are remembered per exact text: two hosts never share an answer, and the cache cannot grow unbounded."""
    from tagwarden.domain import images

    images._ecr_parts.cache_clear()
    assert images._ecr_parts.cache_info().maxsize == 1024
    hosts = {
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com": ("111122223333", "eu-west-1"),
        "222233334444.dkr.ecr.eu-west-1.amazonaws.com": ("222233334444", "eu-west-1"),
        "111122223333.DKR.ECR.eu-west-1.amazonaws.com:443": ("111122223333", "eu-west-1"),
        "111122223333.dkr-ecr.eu-west-2.on.aws": ("111122223333", "eu-west-2"),
        "111122223333.dkr.ecr.cn-north-1.amazonaws.com": None,  # a China region under the commercial suffix
        "ghcr.io": None,
    }
    for _ in range(2):  # the second round is answered from the cache, and must answer the same
        assert {host: ecr_host_parts(host) for host in hosts} == {
            host: parts if parts is not None else (None, None) for host, parts in hosts.items()
        }
    assert images._ecr_parts.cache_info().currsize == len(hosts)
    assert images._ecr_parts.cache_info().hits >= len(hosts)
    for n in range(1100):  # more hosts than the cache holds: the oldest are dropped, answers stay right
        assert ecr_host_parts(f"{n:012d}.dkr.ecr.us-east-1.amazonaws.com") == (f"{n:012d}", "us-east-1")
    assert images._ecr_parts.cache_info().currsize == 1024
    assert (
        canonical_registry("111122223333.dkr-ecr-fips.us-east-1.on.aws")
        == "111122223333.dkr.ecr.us-east-1.amazonaws.com"
    )
    assert looks_like_ecr("111122223333.dkr.ecr.eu-west-1.amazonaws.com.evil.example")
