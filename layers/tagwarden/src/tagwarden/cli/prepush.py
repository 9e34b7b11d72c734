"""`tagwarden prepush IMAGE:TAG --digest sha256:...`: refuse, before CI pushes, to move a tag that must not move.

The registry is asked over the OCI distribution API (`adapters.oci_registry`); the tag's class comes from
the stack's tag policy (or the environment's, or the defaults), and for ECR images, when a ledger is
given, the ledger's view of the tag is shown too. Credentials, in this order: `--username` with
`--password-stdin` (or TAGWARDEN_REGISTRY_PASSWORD), TAGWARDEN_REGISTRY_USERNAME/PASSWORD, for ECR
`GetAuthorizationToken`, docker's `config.json` `auths` entry for the host, else anonymous (reading
config.json and logging in to ECR are adapter work: `adapters.registry_credentials`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tagwarden.cli.errors import CliError, ExitCode, exit_codes, usage_error
from tagwarden.cli.render import check_json, emit_json
from tagwarden.cli.runtime import Runtime, detection_config, quiet_core
from tagwarden.domain.images import (
    DEFAULT_REGISTRY,
    DOCKER_HUB_API,
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
DEFAULT_TIMEOUT = 60


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
    timeout: Annotated[
        int,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=1,
            max=3600,
            help="The check's deadline: every request, retry and wait included (exit 3 when it passes).",
        ),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Before a push: would it move the tag, and may it? (exit 0 push, 1 refused)

    Asks the registry where IMAGE:TAG points now (HEAD on the manifest, with the media types a multi-arch
    push uses). Exit 0 when the tag does not exist or already names --digest; when the push would move it,
    exit 1 for protected and unclassified tags, and for mutable tags with --strict (signature tags move by
    design and pass). Exit 2 for bad input, rejected credentials, a certificate that does not verify or a
    server that is not a registry; 3 when the registry (or the ledger) cannot be reached or does not answer
    within --timeout seconds (60 by default). For ECR images,
    with --stack-name or --table, also shows the ledger's view: where it has the tag, and that digest's scan.
    """
    runtime = ctx.find_object(Runtime)
    assert runtime is not None, "the global options callback puts the Runtime on the context"
    with exit_codes(runtime), quiet_core():
        source = ctx.get_parameter_source("username")
        username_from_environment = source is not None and source.name == "ENVIRONMENT"
        access = Access(username, username_from_environment, password_stdin, ca_file, insecure, registry_url, timeout)
        report = _check(runtime, image, digest, strict, access)
        if runtime.options.json_output:
            emit_json(report_json(report))
        else:
            for line in report_lines(report):
                typer.echo(line)
        if not report.decision.allowed:
            raise typer.Exit(int(ExitCode.REFUSED))


@dataclass(frozen=True, slots=True)
class Access:
    """How the command reaches and logs in to the registry, as its options say."""

    username: str | None
    username_from_environment: bool  # TAGWARDEN_REGISTRY_USERNAME rather than --username, for messages
    password_stdin: bool
    ca_file: Path | None
    insecure: bool
    registry_url: str | None
    timeout: float = DEFAULT_TIMEOUT


def _check(runtime: Runtime, image: str, digest: str, strict: bool, access: Access) -> PrepushReport:
    from tagwarden.adapters.oci_registry import OciRegistry
    from tagwarden.adapters.registry_credentials import CredentialsFileError
    from tagwarden.ports import NotARegistryError, RegistryRefusedError, RegistryUnavailableError
    from tagwarden.services.prepush import check_before_push

    tag, host = prepush_tag(image)
    pushing = _digest(digest)
    endpoint = registry_endpoint(host, access.registry_url, access.insecure, access.ca_file)
    policy = detection_config(runtime.policy_environment).tag_policy
    # The ledger holds ECR tags only; asked only when the command names one.
    with_ledger = is_ecr_registry(tag.image.registry) and bool(runtime.options.table or runtime.options.stack_name)
    try:
        credentials = _credentials(runtime, host, access, os.environ)
        resolver = OciRegistry(endpoint, credentials, deadline=access.timeout)
        return check_before_push(
            resolver, policy, tag, pushing, strict=strict, queries=runtime.queries() if with_ledger else None
        )
    except (RegistryRefusedError, NotARegistryError, CredentialsFileError) as error:
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
    """Where the registry's API is reached, and the CA added to the default trust (plain HTTP: loopback only)."""
    from tagwarden.adapters.oci_registry import RegistryEndpoint, is_loopback, usable_url

    if registry_url is not None:
        parts = usable_url(registry_url)
        if parts is None or parts.path.strip("/") or parts.query or parts.fragment:
            raise usage_error(f"--registry-url: expected https://host[:port], not {registry_url[:200]!r}")
    else:
        parts = usable_url(f"{'http' if insecure else 'https'}://{host}")
        if parts is None:
            raise usage_error(f"bad registry host {host[:200]!r} (a port is at most 65535)")
    base = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise usage_error(f"plain HTTP only to a registry on this machine (loopback), not {base}")
    if ca_file is not None and not ca_file.is_file():
        raise usage_error(f"--ca-file: no such file: {ca_file}")
    return RegistryEndpoint(base, str(ca_file) if ca_file is not None else None)


def _credentials(runtime: Runtime, host: str, access: Access, environ: Mapping[str, str]) -> RegistryCredentials | None:
    from tagwarden.adapters.oci_registry import RegistryCredentials
    from tagwarden.adapters.registry_credentials import docker_config_credentials, ecr_credentials

    username = access.username
    if access.password_stdin:
        if username is None:
            raise usage_error(f"--password-stdin needs --username (or {USERNAME_VARIABLE})")
        password = typer.get_text_stream("stdin").read().rstrip("\r\n")
        if not password:
            raise usage_error("--password-stdin: nothing on stdin")
        return RegistryCredentials(username, password, "--username and --password-stdin")
    if username is not None:
        secret = environ.get(PASSWORD_VARIABLE)
        if not secret:
            needs = f"{USERNAME_VARIABLE} is set but" if access.username_from_environment else "--username needs"
            raise usage_error(f"{needs} a password: --password-stdin or {PASSWORD_VARIABLE}")
        return RegistryCredentials(username, secret, f"{PASSWORD_VARIABLE} credentials")
    account, region = ecr_host_parts(host)
    if account is not None and region is not None:
        options = runtime.options
        return ecr_credentials(account, region, profile=options.profile, endpoint_url=options.endpoint_url)
    return docker_config_credentials(host, environ)


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
        "anonymous": report.lookup.anonymous,
        "ledger": check_json(report.ledger) if report.ledger is not None else None,
        "ledger_disagrees": report.ledger_disagrees,
    }


def report_lines(report: PrepushReport) -> list[str]:
    """The answer for people: the decision, then the ledger's view."""
    decision = report.decision
    lines = [f"{report.tag} ({decision.tag_class.value}): {decision.verdict.value}: {decision.reason}"]
    if report.lookup.anonymous and report.lookup.digest is None:
        lines.append(
            "note: asked anonymously (no credentials given or found): a registry that hides private "
            "repositories from anonymous clients answers 404 for them too"
        )
    ledger = report.ledger
    if ledger is not None:
        lines.append(f"ledger: {ledger.reason}")
        if report.ledger_disagrees:
            lines.append(
                f"ledger: it has the tag on {ledger.digest}, the registry on {report.lookup.digest}: a move the "
                "ledger has not recorded (yet)"
            )
    return lines
