"""Function configuration: read from the environment once, at cold start, failing with the variable's name."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tagwarden.domain.images import canonical_registry, validate_registry
from tagwarden.domain.registry_scope import RegistryScope, parse_image_prefix
from tagwarden.domain.scans import FindingSeverity
from tagwarden.domain.tag_policy import (
    DEFAULT_MUTABLE_TAG_PATTERNS,
    DEFAULT_PROTECTED_TAG_PATTERNS,
    DEFAULT_SIGNATURE_TAG_PATTERNS,
    TagPolicy,
    split_patterns,
)

_ROLE_NAME_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")


class ConfigurationError(RuntimeError):
    """An environment variable is missing or invalid; the message names it."""


class DetectionConfig(BaseModel):
    """How findings are judged: the tag policy, the severity from which a scan fails, the registries watched.

    The functions and the `tagwarden` command read the same variables with the same defaults.
    """

    model_config = ConfigDict(frozen=True)

    PROTECTED_TAG_PATTERNS: tuple[str, ...] = DEFAULT_PROTECTED_TAG_PATTERNS
    MUTABLE_TAG_PATTERNS: tuple[str, ...] = DEFAULT_MUTABLE_TAG_PATTERNS
    # Tags that signatures and attestations (cosign, the OCI referrers fallback) move by design.
    SIGNATURE_TAG_PATTERNS: tuple[str, ...] = DEFAULT_SIGNATURE_TAG_PATTERNS
    FAIL_SEVERITY: FindingSeverity = FindingSeverity.CRITICAL
    # Registries, besides every ECR private registry, whose images the audit watcher checks.
    EXTRA_MONITORED_REGISTRIES: frozenset[str] = frozenset()
    # Registries or `registry/repository-prefix`es whose images are never judged (besides EKS add-ons').
    EXCLUDED_IMAGE_PREFIXES: frozenset[str] = frozenset()
    # Accounts whose ECR events reach Tagwarden; empty: unknown, and alerts say nothing about accounts.
    MONITORED_ACCOUNTS: frozenset[str] = frozenset()

    @field_validator("PROTECTED_TAG_PATTERNS", "MUTABLE_TAG_PATTERNS", "SIGNATURE_TAG_PATTERNS", mode="before")
    @classmethod
    def _patterns(cls, value: object) -> object:
        return split_patterns(value) if isinstance(value, str) else value

    @field_validator("FAIL_SEVERITY", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("EXTRA_MONITORED_REGISTRIES", mode="before")
    @classmethod
    def _registries(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(canonical_registry(validate_registry(host)) for host in split_patterns(value))
        return value

    @field_validator("EXCLUDED_IMAGE_PREFIXES", mode="before")
    @classmethod
    def _prefixes(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(parse_image_prefix(prefix) for prefix in split_patterns(value))
        return value

    @field_validator("MONITORED_ACCOUNTS", mode="before")
    @classmethod
    def _accounts(cls, value: object) -> object:
        if isinstance(value, str):
            accounts = split_patterns(value)
            bad = [
                account for account in accounts if not (len(account) == 12 and account.isascii() and account.isdigit())
            ]
            if bad:
                raise ValueError(f"must be comma-separated 12-digit AWS account ids, not {bad[0][:20]!r}")
            return frozenset(accounts)
        return value

    @property
    def tag_policy(self) -> TagPolicy:
        """The tag policy these patterns describe."""
        return TagPolicy(
            protected=self.PROTECTED_TAG_PATTERNS,
            mutable=self.MUTABLE_TAG_PATTERNS,
            signature=self.SIGNATURE_TAG_PATTERNS,
        )

    @property
    def registry_scope(self) -> RegistryScope:
        """The registries judged, the exclusions, and the accounts whose events reach Tagwarden."""
        return RegistryScope(self.EXTRA_MONITORED_REGISTRIES, self.EXCLUDED_IMAGE_PREFIXES, self.MONITORED_ACCOUNTS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate the configuration; raise ConfigurationError naming each bad variable."""
        source = os.environ if environ is None else environ
        values = {name: source[name] for name in cls.model_fields if name in source}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc'])}: {'is not set' if e['type'] == 'missing' else e['msg']}"
                for e in error.errors()
            )
            raise ConfigurationError(f"invalid Tagwarden configuration: {problems}") from None


class LedgerConfig(DetectionConfig):
    """Configuration every function shares: where the ledger and the alerts topic are."""

    LEDGER_TABLE_NAME: str
    ALERTS_TOPIC_ARN: str

    @field_validator("LEDGER_TABLE_NAME")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not 3 <= len(value) <= 255:
            raise ValueError("must be a DynamoDB table name (3 to 255 characters)")
        return value

    @field_validator("ALERTS_TOPIC_ARN")
    @classmethod
    def _topic_arn(cls, value: str) -> str:
        if not value.startswith("arn:") or ":sns:" not in value:
            raise ValueError("must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        return value


class OrganizationConfig(BaseModel):
    """Where the stack runs, and how its functions read a member account's registry (template "Organization").

    TAGWARDEN_ACCOUNT_ID: the stack's own account; its clusters keep their bare name, and its registry is read
    with the function's own credentials. MEMBER_READ_ROLE_NAME: the read-only role the member template
    creates in each account of the organization (empty: a single-account deployment, no role is assumed).
    AWS_REGION is set by Lambda.
    """

    TAGWARDEN_ACCOUNT_ID: str | None = None
    MEMBER_READ_ROLE_NAME: str | None = None
    AWS_REGION: str | None = None

    @field_validator("TAGWARDEN_ACCOUNT_ID", mode="before")
    @classmethod
    def _account_id(cls, value: object) -> object:
        if value in ("", None):
            return None
        if not (isinstance(value, str) and len(value) == 12 and value.isascii() and value.isdigit()):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("MEMBER_READ_ROLE_NAME", mode="before")
    @classmethod
    def _role_name(cls, value: object) -> object:
        if value in ("", None):
            return None
        # IAM role names: letters, digits and +=,.@_- (at most 64); a path is not part of the convention.
        if not (isinstance(value, str) and _ROLE_NAME_RE.fullmatch(value)):
            raise ValueError("must be an IAM role name (letters, digits, +=,.@_-; at most 64 characters)")
        return value


class PushGuardConfig(LedgerConfig, OrganizationConfig):
    """The push guard also reads a member account's manifests through its read role (OrganizationConfig)."""


class ScanRecorderConfig(LedgerConfig):
    """The scan recorder judges scans with FAIL_SEVERITY (shared)."""


class AuditWatcherConfig(LedgerConfig, OrganizationConfig):
    """The audit watcher also reads EXTRA_MONITORED_REGISTRIES, EXCLUDED_IMAGE_PREFIXES, MONITORED_ACCOUNTS, and
    TAGWARDEN_ACCOUNT_ID to tell member accounts' clusters from the stack's own."""
