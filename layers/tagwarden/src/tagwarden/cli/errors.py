"""Exit codes, and the one line on stderr that replaces a traceback for every expected failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Protocol

import typer

from tagwarden.domain.images import InvalidReferenceError
from tagwarden.ports import TagwardenError


class ExitCode(IntEnum):
    """What the command's exit status means (documented in `tagwarden --help`)."""

    OK = 0
    REFUSED = 1  # a check failed, pin refused, an event could not be replayed
    USAGE = 2  # bad arguments or configuration, including names AWS or the ledger does not know
    AWS = 3  # AWS or the ledger failed: worth retrying


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 check failed or refused; 2 usage or configuration error (bad reference; no, or an "
    "unknown, table, stack or repository; a tag `history` does not know; an empty replay file; no region or "
    "credentials); 3 AWS or ledger error."
)


class CliError(Exception):
    """An expected failure with its exit code and a one-line message."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def usage_error(message: str) -> CliError:
    """A usage or configuration error (exit 2)."""
    return CliError(ExitCode.USAGE, message)


class FailureContext(Protocol):
    """What the command was working on, to name it in a failure message."""

    def ledger_description(self) -> str:
        """E.g. `ledger table 'tagwarden-ledger' in eu-west-1`."""
        ...


def classify(error: BaseException, context: FailureContext) -> CliError | None:
    """The exit code and message for an expected failure; None for a bug (which keeps its traceback)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from tagwarden.adapters.ecr_registry import RepositoryNotFoundError
    from tagwarden.adapters.stack_outputs import StackNotFoundError

    if isinstance(error, CliError):
        return error
    if isinstance(error, InvalidReferenceError):
        return usage_error(f"bad image reference: {error}")
    if isinstance(error, StackNotFoundError | RepositoryNotFoundError):
        return usage_error(f"{error} (check the name, --region and --profile)")
    chain = list(_causes(error))
    for cause in chain:
        if isinstance(cause, NoRegionError):
            return usage_error("no AWS region: pass --region or set AWS_REGION")
        if isinstance(cause, ProfileNotFound | NoCredentialsError | PartialCredentialsError):
            return usage_error(f"AWS credentials: {cause}")
        if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == (
            "ResourceNotFoundException"
        ):
            return usage_error(f"{context.ledger_description()} not found (check --table, --stack-name and --region)")
    if isinstance(error, TagwardenError) or any(isinstance(c, BotoCoreError | ClientError) for c in chain):
        return CliError(ExitCode.AWS, str(error))
    return None


@contextmanager
def exit_codes(context: FailureContext) -> Iterator[None]:
    """Turn expected failures into their exit code and one line on stderr; let bugs keep their traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        failure = classify(error, context)
        if failure is None:
            raise
        typer.echo(f"tagwarden: error: {' '.join(failure.message.split())}", err=True)
        raise typer.Exit(int(failure.code)) from None


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
