"""`tagwarden prepush IMAGE:TAG --digest sha256:...`: refuse, before CI pushes, to move a tag that must not move.

The registry is asked over the OCI distribution API (`adapters.oci_registry`); the tag's class comes from
the stack's tag policy (or the environment's, or the defaults), and for ECR images, when a ledger is
given, the ledger's view of the tag is shown too. Credentials, in this order: `--username` with
`--password-stdin` (or TAGWARDEN_REGISTRY_PASSWORD), TAGWARDEN_REGISTRY_USERNAME/PASSWORD, for ECR
`GetAuthorizationToken`, docker's `config.json` `auths` entry for the host, else anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tagwarden.cli.errors import CliError, ExitCode, exit_codes, usage_error
from tagwarden.cli.render import check_json, emit_json
from tagwarden.cli.runtime import Runtime, detection_config, quiet_core
from tagwarden.domain.images import (
    DEFAULT_REGISTRY,
    InvalidReferenceError,
    ecr_host_parts,
    is_ecr_registry,
    parse_reference,
    validate_digest,
)
from tagwarden.domain.tags import TagRef

if TYPE_CHECKING:
    from tagwarden.adapters.oci_registry import RegistryCredentials, RegistryEndpoint
    from tagwarden.services.prepush import PrepushReport

USERNAME_VARIABLE = "TAGWARDEN_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "TAGWARDEN_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
# Docker Hub's API host: `docker.io` names the registry, not the server that answers its API.
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


def prepush(
    ctx: typer.Context,
    image: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE:TAG",
            help="The tag CI is about to push, e.g. `ghcr.io/acme/api:1.4.0` or an ECR `<host>/shop/api:1.4.0`.",
        ),
    ],
    digest: Annotated[
        str,
        typer.Option(
            "--digest",
            metavar="sha256:...",
            help="Digest of what CI will push (buildx's metadata file: `containerimage.digest`).",
        ),
    ],
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse moving mutable tags (MUTABLE_TAG_PATTERNS) too.")
    ] = False,
    username: Annotated[
        str | None,
        typer.Option("--username", envvar=USERNAME_VARIABLE, help="Registry user (basic auth or the token service)."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help=f"Read the registry password or token from stdin (else {PASSWORD_VARIABLE})."
        ),
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", metavar="PEM", help="Verify the registry's certificate with these CAs."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Plain HTTP, for a registry on this machine (loopback) only."),
    ] = False,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url",
            metavar="URL",
            help="Reach the registry at this base URL (a tunnel, a port-forward) instead of https://<host>.",
        ),
    ] = None,
) -> None:
    """Before a push: would it move the tag, and may it? (exit 0 push, 1 refused)

    Asks the registry where IMAGE:TAG points now (HEAD on the manifest, with the media types a multi-arch
    push uses). Exit 0 when the tag does not exist or already names --digest; when the push would move it,
    exit 1 for protected and unclassified tags, and for mutable tags with --strict (signature tags move by
    design and pass). Exit 2 for bad input, rejected credentials, a certificate that does not verify or a
    server that is not a registry; 3 when the registry (or the ledger) cannot be reached. For ECR images,
    with --stack-name or --table, also shows the ledger's view: where it has the tag, and that digest's scan.
    """
    runtime = ctx.find_object(Runtime)
    assert runtime is not None, "the global options callback puts the Runtime on the context"
    with exit_codes(runtime), quiet_core():
        report = _check(runtime, image, digest, strict, username, password_stdin, ca_file, insecure, registry_url)
        if runtime.options.json_output:
            emit_json(report_json(report))
        else:
            for line in report_lines(report):
                typer.echo(line)
        if not report.decision.allowed:
            raise typer.Exit(int(ExitCode.REFUSED))


def _check(
    runtime: Runtime,
    image: str,
    digest: str,
    strict: bool,
    username: str | None,
    password_stdin: bool,
    ca_file: Path | None,
    insecure: bool,
    registry_url: str | None,
) -> PrepushReport:
    from tagwarden.adapters.oci_registry import OciRegistry
    from tagwarden.ports import NotARegistryError, RegistryRefusedError, RegistryUnavailableError
    from tagwarden.services.prepush import check_before_push

    tag, host = prepush_tag(image)
    pushing = _digest(digest)
    endpoint = registry_endpoint(host, registry_url, insecure, ca_file)
    policy = detection_config(runtime.policy_environment).tag_policy
    # The ledger holds ECR tags only; asked only when the command names one.
    with_ledger = is_ecr_registry(tag.image.registry) and bool(runtime.options.table or runtime.options.stack_name)
    try:
        credentials = _credentials(runtime, host, username, password_stdin, os.environ)
        resolver = OciRegistry(endpoint, credentials)
        return check_before_push(
            resolver, policy, tag, pushing, strict=strict, queries=runtime.queries() if with_ledger else None
        )
    except (RegistryRefusedError, NotARegistryError) as error:
        raise usage_error(str(error)) from None
    except RegistryUnavailableError as error:
        raise CliError(ExitCode.AWS, f"registry unavailable: {error}") from None


def prepush_tag(text: str) -> tuple[TagRef, str]:
    """The tag a push names, and the host its registry's API answers on.

    The reference must name a tag and no digest (a push writes a tag). The host is kept as written (a FIPS
    or dual-stack ECR host is reached as such), while the tag's registry is the canonical one the ledger uses.
    """
    reference = parse_reference(text)
    last = text.rsplit("/", 1)[-1]
    if reference.digest is not None or ":" not in last:
        raise usage_error(f"prepush needs IMAGE:TAG, the tag the push writes (no digest): {text[:200]!r}")
    assert reference.tag is not None
    # Any registry but Docker Hub is written as the reference's first component.
    host = DOCKER_HUB_API if reference.name.registry == DEFAULT_REGISTRY else text.split("/", 1)[0].lower()
    return TagRef(reference.name, reference.tag), host


def _digest(value: str) -> str:
    try:
        return validate_digest(value.strip())
    except InvalidReferenceError as error:
        raise usage_error(f"--digest: {error}") from None


def registry_endpoint(host: str, registry_url: str | None, insecure: bool, ca_file: Path | None) -> RegistryEndpoint:
    """Where the registry's API is reached, and how its certificate is verified (plain HTTP: loopback only)."""
    from tagwarden.adapters.oci_registry import RegistryEndpoint, is_loopback

    if registry_url is not None:
        parts = urlsplit(registry_url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise usage_error(f"--registry-url: expected https://host[:port], not {registry_url[:200]!r}")
        base = f"{parts.scheme}://{parts.netloc}"
    else:
        base = f"{'http' if insecure else 'https'}://{host}"
    if base.startswith("http://") and not is_loopback(urlsplit(base).netloc):
        raise usage_error(f"plain HTTP only to a registry on this machine (loopback), not {base}")
    if ca_file is not None and not ca_file.is_file():
        raise usage_error(f"--ca-file: no such file: {ca_file}")
    return RegistryEndpoint(base, str(ca_file) if ca_file is not None else True)


def _credentials(
    runtime: Runtime, host: str, username: str | None, password_stdin: bool, environ: Mapping[str, str]
) -> RegistryCredentials | None:
    from tagwarden.adapters.oci_registry import RegistryCredentials

    if password_stdin:
        if username is None:
            raise usage_error(f"--password-stdin needs --username (or {USERNAME_VARIABLE})")
        password = typer.get_text_stream("stdin").read().rstrip("\r\n")
        if not password:
            raise usage_error("--password-stdin: nothing on stdin")
        return RegistryCredentials(username, password, "--username and --password-stdin")
    if username is not None:
        secret = environ.get(PASSWORD_VARIABLE)
        if not secret:
            raise usage_error(f"--username needs a password: --password-stdin or {PASSWORD_VARIABLE}")
        return RegistryCredentials(username, secret, f"{PASSWORD_VARIABLE} credentials")
    account, region = ecr_host_parts(host)
    if account is not None and region is not None:
        return _ecr_credentials(runtime, account, region)
    return docker_config_credentials(host, environ)


def _ecr_credentials(runtime: Runtime, account: str, region: str) -> RegistryCredentials:
    """ECR's registry password for the host's account and region (`aws ecr get-login-password`)."""
    import boto3

    from tagwarden.adapters.aws_clients import client_config
    from tagwarden.adapters.oci_registry import ecr_login

    # The image's region, whatever the session's: a registry's token is valid in its own region only.
    session = boto3.Session(profile_name=runtime.options.profile, region_name=region)
    client = session.client("ecr", endpoint_url=runtime.options.endpoint_url, config=client_config(read_timeout=30))
    return ecr_login(client, account)


def docker_config_credentials(host: str, environ: Mapping[str, str]) -> RegistryCredentials | None:
    """The `auths` entry for the host in docker's config.json (`$DOCKER_CONFIG` or ~/.docker), if plain.

    Only the base64 `auth` form (what `docker login` writes without a credential store); a `credsStore` or
    `credHelpers` entry is not run: pass --username and --password-stdin instead.
    """
    directory = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise usage_error(f"docker config {path}: {error}") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host == DOCKER_HUB_API:
        keys.insert(0, DOCKER_HUB_AUTH_KEY)
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise usage_error(f"docker config {path}: the auth of {key!r} is not base64 of user:password") from None
            from tagwarden.adapters.oci_registry import RegistryCredentials

            return RegistryCredentials(user, password, f"docker config credentials ({path})")
    return None


def report_json(report: PrepushReport) -> dict[str, object]:
    """The answer as JSON."""
    decision = report.decision
    return {
        "tag": str(report.tag),
        "class": decision.tag_class.value,
        "current_digest": decision.current,
        "digest": decision.pushing,
        "verdict": decision.verdict.value,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "repository_exists": report.lookup.repository_exists,
        "media_type": report.lookup.media_type,
        "ledger": check_json(report.ledger) if report.ledger is not None else None,
        "ledger_disagrees": report.ledger_disagrees,
    }


def report_lines(report: PrepushReport) -> list[str]:
    """The answer for people: the decision, then the ledger's view."""
    decision = report.decision
    lines = [f"{report.tag} ({decision.tag_class.value}): {decision.verdict.value}: {decision.reason}"]
    ledger = report.ledger
    if ledger is not None:
        lines.append(f"ledger: {ledger.reason}")
        if report.ledger_disagrees:
            lines.append(
                f"ledger: it has the tag on {ledger.digest}, the registry on {report.lookup.digest}: a move the "
                "ledger has not recorded (yet)"
            )
    return lines
