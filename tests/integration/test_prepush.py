"""`tagwarden prepush` against real registries: Debian's docker-registry on loopback with TLS (a CA made here)
and htpasswd auth, with token auth (a token server issuing JWTs the registry verifies), and plain and
anonymous; images and indexes pushed by the tests over the distribution API. A scripted server plays
what real registries do rarely on demand (429s, 5xx, a web page, NAME_UNKNOWN, a missing digest header).
ECR: moto's GetAuthorizationToken for the credentials, and the ledger's view through the real push guard
and scan recorder handlers on moto's DynamoDB."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tagwarden.cli.main import app
from tagwarden.cli.prepush import PASSWORD_VARIABLE, USERNAME_VARIABLE
from typer.testing import CliRunner, Result

from tests.integration.test_cli import assert_one_line_error, create_cloudformation_stack
from tests.support.events import ecr_image_action, ecr_scan
from tests.support.handlers import Handler
from tests.support.oci_registry import (
    DOCKER_LIST,
    OCI_INDEX,
    PASSWORD,
    REGISTRY_HEADERS,
    USERNAME,
    LocalRegistry,
    LoopbackCa,
    Scripted,
    ScriptedServer,
    endless_body,
    free_port,
    make_ca,
    run_closing_server,
    run_registry,
    run_scripted_server,
    run_token_server,
    sha256,
    trickled_headers,
    truncated_chunked,
)
from tests.support.stack import REGION, Stack

OTHER = "sha256:" + "e" * 64
CREDENTIALS = {USERNAME_VARIABLE: USERNAME, PASSWORD_VARIABLE: PASSWORD}
ECR_ACCOUNT = "111122223333"
ECR_HOST = f"{ECR_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
# What moto's GetAuthorizationToken hands out for an account: user AWS, password `<account>-auth-token`.
ECR_LOGIN = ("AWS", f"{ECR_ACCOUNT}-auth-token")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCa:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory, ca: LoopbackCa) -> Iterator[LocalRegistry]:
    with run_registry(tmp_path_factory.mktemp("basic"), ca=ca, basic=(USERNAME, PASSWORD)) as registry:
        yield registry


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, ca: LoopbackCa) -> Iterator[LocalRegistry]:
    directory = tmp_path_factory.mktemp("token")
    with run_token_server(directory, ca) as token, run_registry(directory / "registry", ca=ca, token=token) as registry:
        yield registry


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with run_registry(tmp_path_factory.mktemp("plain")) as registry:
        yield registry


@pytest.fixture(autouse=True)
def no_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker config directory: the machine's own `docker login` never leaks into a test."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    for name in (USERNAME_VARIABLE, PASSWORD_VARIABLE, "TAGWARDEN_STACK_NAME", "TAGWARDEN_TABLE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def tagwarden(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run the command; an unexpected exception (a bug) fails the test with its traceback."""
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def prepush(
    registry: LocalRegistry, image: str, digest: str, *extra: str, env: dict[str, str] | None = None, **kw: str
) -> Result:
    """`tagwarden prepush <registry>/<image> --digest ...` with the registry's CA (or --insecure for plain HTTP)."""
    access = ["--ca-file", str(registry.ca_file)] if registry.ca_file else ["--insecure"]
    credentials = CREDENTIALS if registry.auth != "anonymous" and env is None else env
    return tagwarden("prepush", f"{registry.host}/{image}", "--digest", digest, *access, *extra, env=credentials, **kw)


# --- the decision, on TLS + htpasswd ---------------------------------------------------------------


def test_a_protected_tag_passes_when_absent_or_unchanged_and_is_refused_when_the_push_would_move_it(
    basic_registry: LocalRegistry,
) -> None:
    current = basic_registry.pusher().image("shop/api", "1.4.0", "protected-a")

    unchanged = prepush(basic_registry, "shop/api:1.4.0", current)
    moved = prepush(basic_registry, "shop/api:1.4.0", OTHER)
    absent = prepush(basic_registry, "shop/api:1.5.0", OTHER)

    assert unchanged.exit_code == 0, unchanged.output
    assert "(protected): unchanged" in unchanged.stdout
    assert moved.exit_code == 1, moved.output
    assert f"(protected): refused: the push would move the protected tag from {current} to {OTHER}" in moved.stdout
    assert absent.exit_code == 0, absent.output
    assert "absent: the tag does not exist yet" in absent.stdout


def test_a_mutable_tag_may_move_unless_strict_and_an_unclassified_one_never(basic_registry: LocalRegistry) -> None:
    pusher = basic_registry.pusher()
    pusher.image("shop/web", "latest", "mutable-a")
    pusher.image("shop/web", "feature-x", "ordinary-a")

    relaxed = prepush(basic_registry, "shop/web:latest", OTHER)
    strict = prepush(basic_registry, "shop/web:latest", OTHER, "--strict")
    ordinary = prepush(basic_registry, "shop/web:feature-x", OTHER)

    assert relaxed.exit_code == 0, relaxed.output
    assert "(mutable): moves:" in relaxed.stdout
    assert strict.exit_code == 1, strict.output
    assert "--strict refuses moving mutable tags too" in strict.stdout
    assert ordinary.exit_code == 1, ordinary.output
    assert "(ordinary): refused" in ordinary.stdout


def test_a_signature_tag_moves_by_design_even_with_strict(basic_registry: LocalRegistry) -> None:
    signature_tag = f"sha256-{'a' * 64}.sig"
    basic_registry.pusher().image("shop/signed", signature_tag, "signature-a")

    result = prepush(basic_registry, f"shop/signed:{signature_tag}", OTHER, "--strict")

    assert result.exit_code == 0, result.output
    assert "(signature): moves:" in result.stdout


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_a_multi_arch_tag_is_judged_by_its_index_digest(basic_registry: LocalRegistry, media_type: str) -> None:
    repository = f"shop/multi-{media_type.split('.')[-1].split('+')[0]}"
    index, (amd64, _arm64) = basic_registry.pusher().index(repository, "2.0.0", f"multi-{media_type}", media_type)

    same = prepush(basic_registry, f"{repository}:2.0.0", index, "--json")
    single_platform = prepush(basic_registry, f"{repository}:2.0.0", amd64)

    assert same.exit_code == 0, same.output
    answer = json.loads(same.stdout)
    assert answer["current_digest"] == index
    assert answer["media_type"] == media_type
    assert answer["verdict"] == "unchanged"
    # Pushing one platform's manifest over the index would move the tag (and drop the other platform).
    assert single_platform.exit_code == 1, single_platform.output


def test_json_names_the_class_both_digests_the_verdict_and_no_ledger_outside_ecr(
    basic_registry: LocalRegistry,
) -> None:
    current = basic_registry.pusher().image("shop/json", "3.1.0", "json-a")

    result = prepush(basic_registry, "shop/json:3.1.0", OTHER, "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "tag": f"{basic_registry.host}/shop/json:3.1.0",
        "class": "protected",
        "current_digest": current,
        "digest": OTHER,
        "verdict": "refused",
        "allowed": False,
        "reason": f"the push would move the protected tag from {current} to {OTHER}; protected tags never move",
        "repository_exists": True,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "anonymous": False,
        "ledger": None,
        "ledger_disagrees": False,
    }


def test_the_tag_policy_comes_from_the_environment_when_no_stack_is_named(basic_registry: LocalRegistry) -> None:
    basic_registry.pusher().image("shop/policy", "nightly", "policy-a")

    result = prepush(
        basic_registry, "shop/policy:nightly", OTHER, env={**CREDENTIALS, "MUTABLE_TAG_PATTERNS": "latest,nightly"}
    )

    assert result.exit_code == 0, result.output
    assert "(mutable): moves" in result.stdout


# --- credentials -----------------------------------------------------------------------------------


def test_credentials_from_stdin_and_from_docker_config(basic_registry: LocalRegistry, no_docker_login: Path) -> None:
    current = basic_registry.pusher().image("shop/creds", "1.0.0", "creds-a")
    auth = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    (no_docker_login / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))

    from_stdin = prepush(
        basic_registry, "shop/creds:1.0.0", current, "--username", USERNAME, "--password-stdin", env={}, stdin=PASSWORD
    )
    from_docker_config = prepush(basic_registry, "shop/creds:1.0.0", current, env={})

    assert from_stdin.exit_code == 0, from_stdin.output
    assert from_docker_config.exit_code == 0, from_docker_config.output


def test_wrong_or_missing_credentials_are_one_line_errors(basic_registry: LocalRegistry) -> None:
    wrong = prepush(basic_registry, "shop/api:1.4.0", OTHER, env={USERNAME_VARIABLE: "ci", PASSWORD_VARIABLE: "nope"})
    missing = prepush(basic_registry, "shop/api:1.4.0", OTHER, env={})
    no_password = prepush(basic_registry, "shop/api:1.4.0", OTHER, "--username", "ci", env={})

    assert_one_line_error(wrong, 2, "rejected", "'ci'", "HTTP 401")
    assert_one_line_error(missing, 2, "requires authentication", "--username")
    assert_one_line_error(no_password, 2, "--username needs a password")


def test_a_certificate_from_an_unknown_ca_is_a_one_line_error_naming_ca_file(basic_registry: LocalRegistry) -> None:
    result = tagwarden("prepush", f"{basic_registry.host}/shop/api:1.4.0", "--digest", OTHER, env=CREDENTIALS)

    assert_one_line_error(result, 2, "TLS", "certificate verify failed", "--ca-file")


# --- bearer tokens (a real token server, JWTs verified by the registry) ----------------------------


def test_bearer_token_auth_through_the_registrys_challenge_and_token_service(token_registry: LocalRegistry) -> None:
    assert token_registry.token_server is not None
    current = token_registry.pusher().image("shop/token", "1.4.0", "token-a")
    before = len(token_registry.token_server.requests)

    unchanged = prepush(token_registry, "shop/token:1.4.0", current)
    moved = prepush(token_registry, "shop/token:1.4.0", OTHER)
    absent = prepush(token_registry, "shop/token:9.9.9", OTHER)

    assert (unchanged.exit_code, moved.exit_code, absent.exit_code) == (0, 1, 0), moved.output
    # One token per check, asked for the pull scope of the repository and the registry's service.
    asked = token_registry.token_server.requests[before:]
    assert len(asked) == 3
    assert "scope=repository%3Ashop%2Ftoken%3Apull" in asked[0]
    assert "service=tagwarden-test-registry" in asked[0]


def test_the_token_service_refusing_the_credentials_is_a_one_line_error(token_registry: LocalRegistry) -> None:
    result = prepush(
        token_registry, "shop/token:1.4.0", OTHER, env={USERNAME_VARIABLE: "ci", PASSWORD_VARIABLE: "wrong"}
    )

    assert_one_line_error(result, 2, "token service", "refused", "HTTP 401")


def test_a_token_in_access_token_is_used_too() -> None:
    # OAuth2-style token services answer `access_token` only.
    with run_scripted_server({}) as server:
        challenge = f'Bearer realm="{server.url}/token",service="svc"'
        digest = "sha256:" + "c" * 64
        server.script.update(
            {
                ("GET", "/v2/"): [Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": challenge}, b"{}")],
                ("GET", "/token"): [Scripted(200, {"Content-Type": "application/json"}, b'{"access_token":"abc"}')],
                ("HEAD", "/v2/shop/api/manifests/1.0.0"): [
                    Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": digest})
                ],
            }
        )
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure", env={})

    assert result.exit_code == 0, result.output
    assert server.seen == [("GET", "/v2/"), ("GET", "/token"), ("HEAD", "/v2/shop/api/manifests/1.0.0")]


def test_a_registry_open_at_v2_but_not_for_the_repository_gets_the_repositorys_challenge_answered() -> None:
    with run_scripted_server({}) as server:
        challenge = f'Bearer realm="{server.url}/token",service="svc",scope="repository:shop/api:pull"'
        digest = "sha256:" + "c" * 64
        server.script.update(
            {
                ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
                ("GET", "/token"): [Scripted(200, {"Content-Type": "application/json"}, b'{"token":"t0k"}')],
                ("HEAD", "/v2/shop/api/manifests/1.0.0"): [
                    Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": challenge}),
                    Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": digest}),
                ],
            }
        )
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure", env={})

    assert result.exit_code == 0, result.output
    assert server.seen == [
        ("GET", "/v2/"),
        ("HEAD", "/v2/shop/api/manifests/1.0.0"),
        ("GET", "/token"),
        ("HEAD", "/v2/shop/api/manifests/1.0.0"),
    ]
    assert server.authorizations[-1] == "Bearer t0k"


def test_credentials_never_go_in_clear_text_to_a_token_service_beyond_loopback() -> None:
    challenge = 'Bearer realm="http://auth.example.com/token",service="svc"'
    script = {("GET", "/v2/"): [Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": challenge}, b"{}")]}
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure", env=CREDENTIALS)

    assert_one_line_error(result, 2, "http://auth.example.com/token is not https")
    assert server.seen == [("GET", "/v2/")]


# --- anonymous, plain HTTP on loopback -------------------------------------------------------------


def test_an_anonymous_plain_http_registry_on_loopback_with_insecure(plain_registry: LocalRegistry) -> None:
    current = plain_registry.pusher().image("shop/plain", "1.0.0", "plain-a")

    unchanged = prepush(plain_registry, "shop/plain:1.0.0", current)
    moved = prepush(plain_registry, "shop/plain:1.0.0", OTHER)

    assert unchanged.exit_code == 0, unchanged.output
    assert moved.exit_code == 1, moved.output


def test_an_anonymous_absent_answer_is_marked(plain_registry: LocalRegistry) -> None:
    text = prepush(plain_registry, "shop/plain:9.9.9", OTHER)
    as_json = prepush(plain_registry, "shop/plain:9.9.9", OTHER, "--json")

    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[1].startswith("note: asked anonymously (no credentials given or found)")
    assert json.loads(as_json.stdout)["anonymous"] is True


def test_plain_http_is_refused_beyond_loopback() -> None:
    result = tagwarden("prepush", "registry.example.com/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 2, "plain HTTP only to a registry on this machine")


# --- what real registries do now and then ----------------------------------------------------------


def test_429_is_retried_honouring_retry_after() -> None:
    digest = "sha256:" + "d" * 64
    script = {
        ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
        ("HEAD", "/v2/shop/api/manifests/1.0.0"): [
            Scripted(429, {**REGISTRY_HEADERS, "Retry-After": "0"}),
            Scripted(503, {**REGISTRY_HEADERS, "Retry-After": "0"}),
            Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": digest}),
        ],
    }
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure")

    assert result.exit_code == 0, result.output
    assert server.seen.count(("HEAD", "/v2/shop/api/manifests/1.0.0")) == 3


def test_a_registry_that_keeps_failing_is_exit_3_after_the_retries() -> None:
    script = {
        ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
        ("HEAD", "/v2/shop/api/manifests/1.0.0"): [Scripted(503, {**REGISTRY_HEADERS, "Retry-After": "0"})],
    }
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 3, "registry unavailable", "HTTP 503", "after 4 attempts")
    assert server.seen.count(("HEAD", "/v2/shop/api/manifests/1.0.0")) == 4


def test_an_unreachable_registry_is_exit_3() -> None:
    result = tagwarden("prepush", f"127.0.0.1:{free_port()}/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 3, "registry unavailable", "ConnectionError")


def test_a_server_answering_html_is_not_a_registry() -> None:
    page = b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"
    with run_scripted_server({("GET", "/v2/"): [Scripted(200, {"Content-Type": "text/html"}, page)]}) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 2, "text/html", "not an OCI registry")


def test_a_server_without_v2_is_not_a_registry() -> None:
    with run_scripted_server({("GET", "/v2/"): [Scripted(404, {"Content-Type": "text/plain"}, b"not found")]}) as s:
        result = tagwarden("prepush", f"{s.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 2, "HTTP 404", "not an OCI distribution registry")


def test_without_a_digest_header_the_digest_is_the_sha256_of_the_manifest() -> None:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    manifest_headers = {"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": OCI_INDEX}
    script = {
        ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
        ("HEAD", "/v2/shop/api/manifests/1.0.0"): [Scripted(200, manifest_headers)],
        ("GET", "/v2/shop/api/manifests/1.0.0"): [Scripted(200, manifest_headers, manifest)],
    }
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", sha256(manifest), "--insecure")

    assert result.exit_code == 0, result.output
    assert "unchanged" in result.stdout


def test_an_unknown_repository_is_absent_and_said_so() -> None:
    # ECR's answer for a repository that does not exist, as docker prints it ("name unknown: The repository
    # with name '...' does not exist in the registry with id '...'", aws-actions/amazon-ecr-login#202);
    # distribution's filesystem driver answers MANIFEST_UNKNOWN instead.
    body = (
        b'{"errors":[{"code":"NAME_UNKNOWN","message":"The repository with name \'shop/new\' does not exist '
        b"in the registry with id '111122223333'\"}]}"
    )
    script = {
        ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
        ("HEAD", "/v2/shop/new/manifests/1.0.0"): [Scripted(404, REGISTRY_HEADERS)],
        ("GET", "/v2/shop/new/manifests/1.0.0"): [Scripted(404, REGISTRY_HEADERS, body)],
    }
    with run_scripted_server(script) as server:
        result = tagwarden("--json", "prepush", f"{server.host}/shop/new:1.0.0", "--digest", OTHER, "--insecure")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["verdict"], answer["repository_exists"]) == ("absent", False)
    assert "the repository does not exist yet" in answer["reason"]


def test_ecrs_basic_challenge_with_its_plain_text_body_is_a_registry_asking_for_a_login() -> None:
    # ECR's /v2/ without credentials (quoted in go-containerregistry's tests after NVIDIA/enroot#59, and in
    # mayflower/docker-ls#28): 401, text/plain "Not Authorized", a Basic challenge naming ecr.amazonaws.com.
    challenge = 'Basic realm="https://111122223333.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com"'
    ecr_401 = {
        "Docker-Distribution-Api-Version": "registry/2.0",
        "Www-Authenticate": challenge,
        "Content-Type": "text/plain; charset=utf-8",
    }
    digest = "sha256:" + "f" * 64
    script = {
        ("GET", "/v2/"): [Scripted(401, ecr_401, b"Not Authorized\n")],
        ("HEAD", "/v2/shop/api/manifests/1.0.0"): [
            Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": digest})
        ],
    }
    with run_scripted_server(script) as server:
        anonymous = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure", env={})
        logged_in = tagwarden(
            "prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure", env=CREDENTIALS
        )

    assert_one_line_error(anonymous, 2, "requires authentication")
    assert logged_in.exit_code == 0, logged_in.output
    basic = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert server.authorizations[server.seen.index(("HEAD", "/v2/shop/api/manifests/1.0.0"))] == basic


def test_access_denied_is_a_one_line_error() -> None:
    denied = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    script = {
        ("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")],
        ("HEAD", "/v2/shop/api/manifests/1.0.0"): [Scripted(403, REGISTRY_HEADERS, denied)],
    }
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure")

    assert_one_line_error(result, 2, "access denied (HTTP 403)")


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["127.0.0.1:5000/Shop/API:1.0", "--digest", OTHER], "bad image reference"),
        (["127.0.0.1:5000/shop/api", "--digest", OTHER], "prepush needs IMAGE:TAG"),
        ([f"127.0.0.1:5000/shop/api@{OTHER}", "--digest", OTHER], "prepush needs IMAGE:TAG"),
        (["127.0.0.1:5000/shop/api:1.0", "--digest", "sha256:abc"], "--digest: not a content digest"),
        (["127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--registry-url", "ftp://x"], "--registry-url"),
        (["127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--ca-file", "/nonexistent.pem"], "--ca-file"),
        (["127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--password-stdin"], "--password-stdin needs"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(arguments: list[str], fragment: str) -> None:
    assert_one_line_error(tagwarden("prepush", *arguments, "--insecure"), 2, fragment)


# --- ECR: GetAuthorizationToken, and the ledger's view -----------------------------------------------


@pytest.fixture
def ecr_registry(tmp_path: Path, ca: LoopbackCa) -> Iterator[LocalRegistry]:
    """A TLS registry that takes ECR's login (as moto hands it out) and stands in for an ECR host."""
    with run_registry(tmp_path / "ecr", ca=ca, basic=ECR_LOGIN) as registry:
        yield registry


def ecr_prepush(registry: LocalRegistry, tag: str, digest: str, *extra: str) -> Result:
    """`tagwarden prepush` of an ECR tag, its registry API reached at the local registry (`--registry-url`)."""
    reach = ["--registry-url", registry.url, "--ca-file", str(registry.ca_file)]
    return tagwarden("prepush", f"{ECR_HOST}/shop/api:{tag}", "--digest", digest, *reach, *extra)


def ledger_options(stack: Stack) -> list[str]:
    """The options naming the moto stack's ledger table."""
    return ["--table", stack.table_name, "--region", REGION]


def test_ecr_logs_in_with_get_authorization_token_and_shows_the_ledgers_view(
    stack: Stack, push_guard: Handler, scan_recorder: Handler, ecr_registry: LocalRegistry
) -> None:
    current = ecr_registry.pusher().image("shop/api", "1.4.0", "ecr-a")
    push_guard(ecr_image_action(tag="1.4.0", digest=current, time="2026-11-20T10:00:00Z"))
    scan_recorder(ecr_scan(digest=current, tags=["1.4.0"], time="2026-11-20T10:01:00Z", counts={"LOW": 1}))

    moved = ecr_prepush(ecr_registry, "1.4.0", OTHER, *ledger_options(stack))
    as_json = ecr_prepush(ecr_registry, "1.4.0", current, "--json", *ledger_options(stack))

    assert moved.exit_code == 1, moved.output
    lines = moved.stdout.splitlines()
    assert lines[0].startswith(f"{ECR_HOST}/shop/api:1.4.0 (protected): refused")
    assert lines[1].startswith(f"ledger: passed: {ECR_HOST}/shop/api@{current} has a passing ecr-basic scan")
    assert as_json.exit_code == 0, as_json.output
    ledger = json.loads(as_json.stdout)["ledger"]
    assert (ledger["digest"], ledger["passed"], ledger["scan"]["status"]) == (current, True, "COMPLETE")


def test_ecr_tag_the_ledger_has_on_other_content_is_flagged(
    stack: Stack, push_guard: Handler, ecr_registry: LocalRegistry
) -> None:
    current = ecr_registry.pusher().image("shop/api", "2.0.0", "ecr-b")
    recorded = "sha256:" + "a" * 64
    push_guard(ecr_image_action(tag="2.0.0", digest=recorded, time="2026-11-20T10:00:00Z"))

    result = ecr_prepush(ecr_registry, "2.0.0", current, *ledger_options(stack))

    assert result.exit_code == 0, result.output
    assert f"ledger: it has the tag on {recorded}, the registry on {current}" in result.stdout


def test_ecr_without_a_ledger_asks_the_registry_alone(stack: Stack, ecr_registry: LocalRegistry) -> None:
    ecr_registry.pusher().image("shop/api", "3.0.0", "ecr-c")

    result = ecr_prepush(ecr_registry, "3.0.0", OTHER, "--json")

    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["ledger"] is None


def test_the_stacks_policy_and_ledger_come_from_stack_name(
    stack: Stack, push_guard: Handler, ecr_registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_cloudformation_stack(
        "tagwarden",
        {"LedgerTableName": stack.table_name, "AlertsTopicArn": stack.topic_arn},
        {"MutableTagPatterns": "latest,release-*"},
    )
    current = ecr_registry.pusher().image("shop/api", "release-7", "ecr-d")
    push_guard(ecr_image_action(tag="release-7", digest=current, time="2026-11-20T10:00:00Z"))
    # The deployed stack's policy is what the functions use: it wins over the command's environment.
    monkeypatch.setenv("MUTABLE_TAG_PATTERNS", "latest")

    result = ecr_prepush(ecr_registry, "release-7", OTHER, "--json", "--stack-name", "tagwarden", "--region", REGION)

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["class"], answer["verdict"]) == ("mutable", "moves")
    assert answer["ledger"]["digest"] == current


def test_the_installed_command_reads_the_password_from_its_stdin(basic_registry: LocalRegistry, tmp_path: Path) -> None:
    # A real process, as CI runs it: stdin, exit status, and nothing but the answer on stdout.
    current = basic_registry.pusher().image("shop/process", "1.0.0", "process-a")
    command = [sys.executable, "-m", "tagwarden.cli", "prepush", f"{basic_registry.host}/shop/process:1.0.0"]
    options = ["--ca-file", str(basic_registry.ca_file), "--username", USERNAME, "--password-stdin"]
    environment = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}

    same = subprocess.run(
        [*command, "--digest", current, *options], input=PASSWORD, capture_output=True, text=True, env=environment
    )
    moved = subprocess.run(
        [*command, "--digest", OTHER, *options], input=PASSWORD, capture_output=True, text=True, env=environment
    )

    assert (same.returncode, same.stderr) == (0, ""), same.stderr
    assert (moved.returncode, moved.stderr) == (1, ""), moved.stderr
    assert "(protected): refused" in moved.stdout


# --- what the red team's hostile servers did (/tmp/rt-prepush-lab: evil.py's modes, chunk.py) ---------
# Each answer below once read as "absent" (exit 0) or ended in a traceback, a hang or a MemoryError.

V2_OK = {("GET", "/v2/"): [Scripted(200, REGISTRY_HEADERS, b"{}")]}
MANIFEST = "/v2/shop/api/manifests/1.0.0"


def scripted_prepush(server: ScriptedServer, *extra: str, env: dict[str, str] | None = None) -> Result:
    """`tagwarden prepush` of shop/api:1.0.0 on a scripted plain-http server."""
    return tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--insecure", *extra, env=env)


@pytest.mark.parametrize(
    ("script", "fragments"),
    [
        pytest.param(
            # evil.py json_api: a JSON web app, 200 on /v2/ without the registry's header, text 404 elsewhere.
            {("GET", "/v2/"): [Scripted(200, {"Content-Type": "application/json"}, b"{}")]},
            ("HTTP 200 (application/json) without a Docker-Distribution-API-Version header", "not an OCI registry"),
            id="v2-200-without-the-api-version-header",
        ),
        pytest.param(
            # evil.py text404: the header is there, but the 404 is a plain-text page, not a registry's error.
            {
                **V2_OK,
                ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
                ("GET", MANIFEST): [Scripted(404, {"Content-Type": "text/plain"}, b"404 page not found\n")],
            },
            ("HTTP 404 (text/plain) without a registry's error code", "MANIFEST_UNKNOWN", "not read as an absent tag"),
            id="404-text-page",
        ),
        pytest.param(
            # evil.py recursion_404: JSON nested deeper than Python's recursion limit.
            {
                **V2_OK,
                ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
                ("GET", MANIFEST): [Scripted(404, REGISTRY_HEADERS, b"[" * 200_000)],
            },
            ("HTTP 404 (application/json) without a registry's error code",),
            id="404-json-nested-too-deep",
        ),
        pytest.param(
            # An error body with some other code is not a proof of absence either.
            {
                **V2_OK,
                ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
                ("GET", MANIFEST): [Scripted(404, REGISTRY_HEADERS, b'{"errors":[{"code":"UNSUPPORTED"}]}')],
            },
            ("without a registry's error code",),
            id="404-other-error-code",
        ),
        pytest.param(
            # evil.py gzip_garbage: Content-Encoding gzip over bytes that are not gzip.
            {
                **V2_OK,
                ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
                ("GET", MANIFEST): [Scripted(404, {**REGISTRY_HEADERS, "Content-Encoding": "gzip"}, b"not gzip")],
            },
            ("does not decode as its Content-Encoding says",),
            id="404-gzip-garbage",
        ),
    ],
)
def test_a_404_is_absent_only_with_a_registry_error_code(
    script: dict[tuple[str, str], list[Scripted]], fragments: tuple[str, ...]
) -> None:
    with run_scripted_server(script) as server:
        result = scripted_prepush(server)

    assert_one_line_error(result, 2, *fragments)


def test_a_harbor_not_found_is_absent() -> None:
    # Harbor's 404 for an artifact it does not have: {"errors":[{"code":"NOT_FOUND","message":"artifact ..."}]}.
    body = b'{"errors":[{"code":"NOT_FOUND","message":"artifact library/api:1.0.0 not found"}]}'
    script = {
        **V2_OK,
        ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
        ("GET", MANIFEST): [Scripted(404, REGISTRY_HEADERS, body)],
    }
    with run_scripted_server(script) as server:
        result = scripted_prepush(server, "--json")

    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["verdict"], json.loads(result.stdout)["repository_exists"]) == ("absent", None)


def test_distributions_manifest_unknown_leaves_the_repositorys_existence_unknown(basic_registry: LocalRegistry) -> None:
    # docker-registry answers MANIFEST_UNKNOWN for a repository nobody pushed to: it does not say NAME_UNKNOWN.
    result = prepush(basic_registry, "shop/never-pushed:1.0.0", OTHER, "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["verdict"], answer["repository_exists"]) == ("absent", None)
    assert answer["reason"] == "the tag does not exist yet: the push creates it"


def test_the_accept_header_ends_with_a_fallback_so_a_strict_registry_never_answers_404() -> None:
    digest = "sha256:" + "d" * 64
    script = {**V2_OK, ("HEAD", MANIFEST): [Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": digest})]}
    with run_scripted_server(script) as server:
        result = tagwarden("prepush", f"{server.host}/shop/api:1.0.0", "--digest", digest, "--insecure")

    assert result.exit_code == 0, result.output
    accept = server.request_headers[server.seen.index(("HEAD", MANIFEST))]["Accept"]
    assert accept.startswith("application/vnd.oci.image.index.v1+json, ")
    assert "application/vnd.docker.distribution.manifest.v1+prettyjws" in accept
    assert accept.endswith("*/*;q=0.1")


@pytest.mark.parametrize(
    ("script", "fragments"),
    [
        pytest.param(
            # evil.py bearer_recursion: the token service answers JSON nested too deep to parse.
            lambda url: {
                ("GET", "/v2/"): [Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": f'Bearer realm="{url}/t"'})],
                ("GET", "/t"): [Scripted(200, REGISTRY_HEADERS, b"[" * 200_000)],
            },
            ("answered JSON without a token",),
            id="token-json-nested-too-deep",
        ),
        pytest.param(
            # evil.py bearer_badrealm: a realm urllib3 cannot parse.
            lambda url: {
                ("GET", "/v2/"): [
                    Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": 'Bearer realm="https://[::1/token"'})
                ]
            },
            ("without a usable realm", "https://[::1/token"),
            id="realm-unparseable",
        ),
        pytest.param(
            # evil.py bearer_realm_userinfo: user info in the realm.
            lambda url: {
                ("GET", "/v2/"): [
                    Scripted(
                        401,
                        {**REGISTRY_HEADERS, "WWW-Authenticate": 'Bearer realm="http://evil.example@127.0.0.1:1/t"'},
                    )
                ]
            },
            ("without a usable realm",),
            id="realm-with-user-info",
        ),
        pytest.param(
            # evil.py basic_redirect_loop: the manifest redirects to itself.
            lambda url: {**V2_OK, ("HEAD", MANIFEST): [Scripted(302, {"Location": MANIFEST})]},
            ("more than 5 redirects",),
            id="redirect-loop",
        ),
        pytest.param(
            # evil.py basic_ftp: a redirect to another scheme.
            lambda url: {**V2_OK, ("HEAD", MANIFEST): [Scripted(302, {"Location": "ftp://127.0.0.1/x"})]},
            ("redirects to 'ftp://127.0.0.1/x', not an http(s) URL",),
            id="redirect-to-ftp",
        ),
    ],
)
def test_hostile_answers_are_one_line_errors(
    script: Callable[[str], dict[tuple[str, str], list[Scripted]]], fragments: tuple[str, ...]
) -> None:
    with run_scripted_server({}) as server:
        server.script.update(script(server.url))
        result = scripted_prepush(server, env={})

    assert_one_line_error(result, 2, *fragments)
    if "more than 5 redirects" in fragments:
        assert server.seen.count(("HEAD", MANIFEST)) == 6  # the first request and 5 redirects


def test_an_unreadable_retry_after_falls_back_to_backoff() -> None:
    # evil.py retry_sup2: `Retry-After: ²` (a digit to str.isdigit, not to float).
    script = {
        **V2_OK,
        ("HEAD", MANIFEST): [
            Scripted(503, {**REGISTRY_HEADERS, "Retry-After": "\u00b2"}),
            Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": OTHER}),
        ],
    }
    with run_scripted_server(script) as server:
        result = scripted_prepush(server)

    assert result.exit_code == 0, result.output
    assert server.seen.count(("HEAD", MANIFEST)) == 2


def test_a_body_cut_short_is_retried_then_unavailable() -> None:
    # chunk.py: HEAD 404, then a chunked GET whose first chunk never completes.
    script = {
        **V2_OK,
        ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
        ("GET", MANIFEST): [Scripted(writer=truncated_chunked)],
    }
    with run_scripted_server(script) as server:
        result = scripted_prepush(server)

    assert_one_line_error(result, 3, "registry unavailable", "ChunkedEncodingError", "after 4 attempts")
    assert server.seen.count(("GET", MANIFEST)) == 4


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["127.0.0.1:99999/shop/api:1.0", "--digest", OTHER], "a port is at most 65535"),
        (
            ["127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--registry-url", "https://127.0.0.1:99999"],
            "--registry-url",
        ),
        (["127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--registry-url", "https://[::1"], "--registry-url"),
    ],
)
def test_bad_ports_and_urls_are_one_line_usage_errors(arguments: list[str], fragment: str) -> None:
    assert_one_line_error(tagwarden("prepush", *arguments, "--insecure"), 2, fragment)


def test_a_username_from_the_environment_without_a_password_says_which_variable(basic_registry: LocalRegistry) -> None:
    result = prepush(basic_registry, "shop/api:1.4.0", OTHER, env={USERNAME_VARIABLE: "ci"})

    assert_one_line_error(result, 2, f"{USERNAME_VARIABLE} is set but a password", PASSWORD_VARIABLE)


# --- one deadline per check, bodies capped ------------------------------------------------------------


def test_a_server_trickling_headers_is_cut_at_the_deadline() -> None:
    # evil.py slowloris: one header line every 0.2 s (every 2 s there), never the blank line that ends them.
    script = {**V2_OK, ("HEAD", MANIFEST): [Scripted(writer=trickled_headers)]}
    with run_scripted_server(script) as server:
        started = time.monotonic()
        result = scripted_prepush(server, "--timeout", "2")
        elapsed = time.monotonic() - started

    assert_one_line_error(result, 3, "registry unavailable", "within the 2 s deadline (--timeout)")
    assert elapsed < 10


def test_an_endless_body_is_cut_at_4_mib() -> None:
    # evil.py huge_body: a chunked 404 that never ends (a MemoryError after 43 s before).
    script = {
        **V2_OK,
        ("HEAD", MANIFEST): [Scripted(404, REGISTRY_HEADERS)],
        ("GET", MANIFEST): [Scripted(writer=endless_body)],
    }
    with run_scripted_server(script) as server:
        result = scripted_prepush(server)

    assert_one_line_error(result, 3, "registry unavailable", "goes past 4 MiB")


def test_a_retry_after_beyond_the_deadline_ends_the_check_at_once() -> None:
    # evil.py retry_huge: `Retry-After: 99999999` (95 s of waiting before).
    script = {**V2_OK, ("HEAD", MANIFEST): [Scripted(503, {**REGISTRY_HEADERS, "Retry-After": "99999999"})]}
    with run_scripted_server(script) as server:
        started = time.monotonic()
        result = scripted_prepush(server)
        elapsed = time.monotonic() - started

    assert_one_line_error(result, 3, "HTTP 503", "Retry-After 99999999 s", "within the 60 s deadline")
    assert elapsed < 10
    assert server.seen.count(("HEAD", MANIFEST)) == 1


# --- redirects, token services, TLS ---------------------------------------------------------------------


def test_an_https_registry_may_not_redirect_to_plain_http_beyond_loopback(ca: LoopbackCa) -> None:
    # evil.py basic_redirect, aimed beyond this machine.
    location = "http://registry.example.invalid/v2/shop/api/manifests/1.0.0"
    script = {**V2_OK, ("HEAD", MANIFEST): [Scripted(307, {"Location": location})]}
    with run_scripted_server(script, ca) as server:
        result = tagwarden(
            "prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--ca-file", str(ca.ca_file), env=CREDENTIALS
        )

    assert_one_line_error(result, 2, "redirects from https to plain http", location)


def test_a_redirect_to_another_origin_does_not_carry_the_credentials() -> None:
    challenge = 'Basic realm="registry"'
    with run_scripted_server({}) as mirror, run_scripted_server({}) as server:
        mirror.script[("HEAD", MANIFEST)] = [Scripted(200, {**REGISTRY_HEADERS, "Docker-Content-Digest": OTHER})]
        server.script.update(
            {
                ("GET", "/v2/"): [Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": challenge}, b"{}")],
                ("HEAD", MANIFEST): [Scripted(307, {"Location": f"{mirror.url}{MANIFEST}"})],
            }
        )
        result = scripted_prepush(server, env=CREDENTIALS)

    assert result.exit_code == 0, result.output
    assert "unchanged" in result.stdout
    assert server.authorizations[-1] is not None and server.authorizations[-1].startswith("Basic ")
    assert mirror.authorizations == [None]


def test_an_https_registry_may_not_send_credentials_to_a_plain_http_token_service_even_on_loopback(
    ca: LoopbackCa,
) -> None:
    # evil.py bearer_loopback_http: the password would go in clear text to a local port.
    with run_scripted_server({}) as token, run_scripted_server({}, ca) as server:
        challenge = f'Bearer realm="{token.url}/token",service="svc"'
        server.script[("GET", "/v2/")] = [Scripted(401, {**REGISTRY_HEADERS, "WWW-Authenticate": challenge}, b"{}")]
        result = tagwarden(
            "prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--ca-file", str(ca.ca_file), env=CREDENTIALS
        )

    assert_one_line_error(result, 2, f"{token.url}/token is not https")
    assert token.seen == []


def test_https_to_a_plain_http_port_suggests_insecure() -> None:
    with run_scripted_server(V2_OK) as server:
        result = tagwarden(
            "prepush", f"{server.host}/shop/api:1.0.0", "--digest", OTHER, "--registry-url", f"https://{server.host}"
        )

    assert_one_line_error(result, 2, "WRONG_VERSION_NUMBER", "plain HTTP", "--insecure")
    assert "certificate" not in result.stderr and "--ca-file" not in result.stderr


def test_a_tls_handshake_cut_short_is_retried_then_unavailable() -> None:
    with run_closing_server() as host:
        result = tagwarden("prepush", f"{host}/shop/api:1.0.0", "--digest", OTHER)

    assert_one_line_error(result, 3, "registry unavailable", "after 4 attempts")
    assert "certificate" not in result.stderr


def test_requests_ca_bundle_is_added_to_the_trust_too(basic_registry: LocalRegistry) -> None:
    current = basic_registry.pusher().image("shop/bundle", "1.0.0", "bundle-a")
    assert basic_registry.ca_file is not None

    result = tagwarden(
        "prepush",
        f"{basic_registry.host}/shop/bundle:1.0.0",
        "--digest",
        current,
        env={**CREDENTIALS, "REQUESTS_CA_BUNDLE": str(basic_registry.ca_file)},
    )

    assert result.exit_code == 0, result.output


def test_a_ca_file_that_is_not_pem_is_a_one_line_error(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")

    result = tagwarden("prepush", "127.0.0.1:5000/shop/api:1.0", "--digest", OTHER, "--ca-file", str(not_pem))

    assert_one_line_error(result, 2, f"CA certificates {not_pem}")
