"""Where a registry's credentials come from, besides the command line: docker's `config.json`, and ECR's
`GetAuthorizationToken` (what `aws ecr get-login-password` prints).

Adapter work kept out of the command: reading a file format and building an AWS session. Failures become
the port's errors (`CredentialsFileError` for a config.json that cannot be read, `RegistryRefusedError`
and `RegistryUnavailableError` for ECR), so the command prints one line.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tagwarden.adapters.oci_registry import RegistryCredentials
from tagwarden.domain.images import DOCKER_HUB_API
from tagwarden.ports import RegistryError, RegistryRefusedError, RegistryUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


class CredentialsFileError(RegistryError):
    """Docker's config.json exists but cannot be read, or its entry for the host is not user:password."""


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
    except (OSError, ValueError, RecursionError) as error:
        raise CredentialsFileError(f"docker config {path}: {error}") from None
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
                raise CredentialsFileError(
                    f"docker config {path}: the auth of {key!r} is not base64 of user:password"
                ) from None
            return RegistryCredentials(user, password, f"docker config credentials ({path})")
    return None


def ecr_login(client: ECRClient, account: str) -> RegistryCredentials:
    """Basic credentials for an account's ECR registry, from `GetAuthorizationToken` (valid 12 hours).

    The token is base64 of `AWS:<password>`, as `aws ecr get-login-password` prints the second half.
    Raises RegistryRefusedError when the caller may not log in, RegistryUnavailableError when ECR fails.
    """
    from botocore.exceptions import ClientError

    try:
        data = client.get_authorization_token(registryIds=[account])["authorizationData"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "ExpiredTokenException"):
            raise RegistryRefusedError(f"ECR GetAuthorizationToken for account {account}: {error}") from None
        raise RegistryUnavailableError(f"ECR GetAuthorizationToken for account {account}: {error}") from None
    token = base64.b64decode(data[0]["authorizationToken"]).decode()
    username, _, password = token.partition(":")
    return RegistryCredentials(username, password, "ECR GetAuthorizationToken")


def ecr_credentials(
    account: str, region: str, *, profile: str | None = None, endpoint_url: str | None = None
) -> RegistryCredentials:
    """ECR's registry password for an account and region, with the AWS credentials of `profile` (or the
    environment's)."""
    import boto3

    from tagwarden.adapters.aws_clients import client_config

    # The image's region, whatever the session's: a registry's token is valid in its own region only.
    session = boto3.Session(profile_name=profile, region_name=region)
    client = session.client("ecr", endpoint_url=endpoint_url, config=client_config(read_timeout=30))
    return ecr_login(client, account)
