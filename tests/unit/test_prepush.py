"""The prepush decision table, and the pieces of the registry protocol read without a socket: auth
challenges, Retry-After, the host a reference's API answers on, and docker's config.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from tagwarden.adapters.oci_registry import is_loopback, parse_challenge, retry_after, tls_context, usable_url
from tagwarden.adapters.registry_credentials import docker_config_credentials, ecr_login
from tagwarden.cli.errors import CliError
from tagwarden.cli.prepush import prepush_tag, registry_endpoint
from tagwarden.domain.prepush import PushVerdict, TagLookup, decide_prepush
from tagwarden.domain.tag_policy import TagClass, TagPolicy
from tagwarden.ports import RegistryRefusedError, RegistryUnavailableError

A, B = ("sha256:" + c * 64 for c in "ab")


@pytest.mark.parametrize(
    ("tag_class", "current", "strict", "verdict"),
    [
        (TagClass.PROTECTED, None, False, PushVerdict.ABSENT),
        (TagClass.PROTECTED, B, False, PushVerdict.UNCHANGED),
        (TagClass.PROTECTED, A, False, PushVerdict.REFUSED),
        (TagClass.ORDINARY, A, False, PushVerdict.REFUSED),
        (TagClass.MUTABLE, A, False, PushVerdict.MOVES),
        (TagClass.MUTABLE, A, True, PushVerdict.REFUSED),
        (TagClass.MUTABLE, None, True, PushVerdict.ABSENT),
        (TagClass.SIGNATURE, A, False, PushVerdict.MOVES),
        (TagClass.SIGNATURE, A, True, PushVerdict.MOVES),
        (TagClass.ORDINARY, B, True, PushVerdict.UNCHANGED),
    ],
)
def test_the_decision_table(tag_class: TagClass, current: str | None, strict: bool, verdict: PushVerdict) -> None:
    decision = decide_prepush(tag_class, TagLookup(current), B, strict=strict)

    assert decision.verdict is verdict
    assert decision.allowed is (verdict is not PushVerdict.REFUSED)


def test_an_unknown_repository_is_absent_and_says_so() -> None:
    decision = decide_prepush(TagClass.PROTECTED, TagLookup(None, repository_exists=False), B, strict=True)

    assert decision.allowed
    assert decision.reason.startswith("the repository does not exist yet")


def test_tags_are_classified_by_the_stacks_policy() -> None:
    policy = TagPolicy(mutable=("latest", "main-*"))

    assert policy.classify("main-42") is TagClass.MUTABLE
    assert policy.classify("1.4.0") is TagClass.PROTECTED


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            "bearer",
            {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
        ),
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/api:pull"',
            "bearer",
            {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:acme/api:pull"},
        ),
        (
            'Basic realm="https://111122223333.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com"',
            "basic",
            {"realm": "https://111122223333.dkr.ecr.eu-west-1.amazonaws.com/", "service": "ecr.amazonaws.com"},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("Bearer realm=https://r/token, service=svc", "bearer", {"realm": "https://r/token", "service": "svc"}),
    ],
)
def test_auth_challenges_as_registries_send_them(header: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(header)

    assert challenge is not None
    assert (challenge.scheme, dict(challenge.params)) == (scheme, params)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after("soon") is None
    assert retry_after(None) is None
    # Digits to str.isdigit() that float() refuses (the red team's `Retry-After: ²`), and a sign.
    assert retry_after("\u00b2") is None
    assert retry_after("\u0663") is None
    assert retry_after("-1") is None


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("https://ghcr.io/token", True),
        ("http://127.0.0.1:5000", True),
        ("https://[::1]:5000/token", True),
        ("https://[::1/token", False),
        ("https://127.0.0.1:99999", False),
        ("https://127.0.0.1:port", False),
        ("ftp://127.0.0.1/x", False),
        ("http://evil.example@127.0.0.1/token", False),
        ("/token", False),
        ("", False),
    ],
)
def test_only_http_urls_with_a_host_and_a_valid_port_are_used(url: str, usable: bool) -> None:
    assert (usable_url(url) is not None) is usable


def test_ca_file_adds_a_private_ca_to_the_default_trust(tmp_path: Path) -> None:
    from tests.support.oci_registry import make_ca

    ca = make_ca(tmp_path)
    default = {cert["serialNumber"] for cert in tls_context().get_ca_certs()}
    with_private = {cert["serialNumber"] for cert in tls_context(str(ca.ca_file)).get_ca_certs()}

    # The system's roots (or certifi's, on a machine without them) stay; the private CA comes on top.
    assert len(default) > 100
    assert default < with_private
    assert len(with_private - default) == 1


def test_a_bad_registry_host_or_url_is_a_usage_error() -> None:
    with pytest.raises(CliError, match="at most 65535"):
        registry_endpoint("127.0.0.1:99999", None, False, None)
    with pytest.raises(CliError, match="--registry-url"):
        registry_endpoint("127.0.0.1:5000", "https://[::1", False, None)


@pytest.mark.parametrize(
    ("reference", "host", "registry"),
    [
        ("nginx:1.27", "registry-1.docker.io", "docker.io"),
        ("ghcr.io/acme/api:1.0", "ghcr.io", "ghcr.io"),
        ("localhost:5000/api:1.0", "localhost:5000", "localhost:5000"),
        (
            "111122223333.dkr.ecr-fips.us-east-1.amazonaws.com/shop/api:1.0",
            "111122223333.dkr.ecr-fips.us-east-1.amazonaws.com",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com",
        ),
        (
            "111122223333.dkr-ecr.eu-west-1.on.aws/shop/api:1.0",
            "111122223333.dkr-ecr.eu-west-1.on.aws",
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com",
        ),
    ],
)
def test_the_api_is_asked_on_the_host_as_written_and_the_tag_keeps_the_canonical_registry(
    reference: str, host: str, registry: str
) -> None:
    tag, api_host = prepush_tag(reference)

    assert api_host == host
    assert tag.image.registry == registry


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:5000", True), ("localhost", True), ("[::1]:5000", True), ("127.8.0.1", True), ("10.0.0.1", False)],
)
def test_plain_http_is_for_loopback_only(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        assert registry_endpoint(host, None, True, None).base_url == f"http://{host}"
    else:
        with pytest.raises(CliError):
            registry_endpoint(host, None, True, None)


def test_docker_config_auth_for_docker_hub_and_a_registry(tmp_path: Path) -> None:
    def auth(pair: str) -> dict[str, str]:
        return {"auth": base64.b64encode(pair.encode()).decode()}

    config = {
        "auths": {"https://index.docker.io/v1/": auth("hub:pw"), "ghcr.io": auth("gh:tok"), "quay.io": {}},
        "credsStore": "desktop",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    environ = {"DOCKER_CONFIG": str(tmp_path)}

    hub = docker_config_credentials("registry-1.docker.io", environ)
    github = docker_config_credentials("ghcr.io", environ)

    assert hub is not None and (hub.username, hub.password) == ("hub", "pw")
    assert github is not None and (github.username, github.password) == ("gh", "tok")
    # A credential store is not run: no credentials, and the command says how to pass them.
    assert docker_config_credentials("quay.io", environ) is None
    assert "pw" not in repr(hub)


def test_ecr_login_decodes_the_authorization_token_and_maps_refusals() -> None:
    client = boto3.client("ecr", region_name="eu-west-1")
    token = base64.b64encode(b"AWS:eyJwYXlsb2FkIjoi").decode()
    with Stubber(client) as stub:
        stub.add_response(
            "get_authorization_token",
            {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://x"}]},
            {"registryIds": ["111122223333"]},
        )
        stub.add_client_error("get_authorization_token", "AccessDeniedException", "not authorized")
        stub.add_client_error("get_authorization_token", "ServerException", "oops", http_status_code=500)

        login = ecr_login(client, "111122223333")
        with pytest.raises(RegistryRefusedError, match="AccessDeniedException"):
            ecr_login(client, "111122223333")
        with pytest.raises(RegistryUnavailableError, match="ServerException"):
            ecr_login(client, "111122223333")

    assert (login.username, login.password) == ("AWS", "eyJwYXlsb2FkIjoi")
