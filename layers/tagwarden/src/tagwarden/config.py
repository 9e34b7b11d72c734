"""Function configuration: read from the environment once, at cold start, failing with the variable's name."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from tagwarden.domain.images import canonical_registry, validate_registry
from tagwarden.domain.registry_scope import RegistryScope, parse_image_prefix
from tagwarden.domain.revert import RevertScope
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


def table_name(value: str) -> str:
    """A DynamoDB table name's length check (the ledger's name comes from the template)."""
    if not 3 <= len(value) <= 255:
        raise ValueError("must be a DynamoDB table name (3 to 255 characters)")
    return value


class LedgerConfig(DetectionConfig):
    """Configuration every function shares: where the ledger and the alerts topic are."""

    LEDGER_TABLE_NAME: str
    ALERTS_TOPIC_ARN: str
    # Optional alert sinks (issue 13), empty when the template's ChatNotifications / SecurityHubFindings are off.
    CHAT_TOPIC_ARN: str | None = None
    SECURITY_HUB_PRODUCT_ARN: str | None = None
    # The stack's name and region, for the `tagwarden` commands alerts print (`--stack-name`, `--region`).
    TAGWARDEN_STACK_NAME: str | None = None
    AWS_REGION: str | None = None

    @field_validator("LEDGER_TABLE_NAME")
    @classmethod
    def _table_name(cls, value: str) -> str:
        return table_name(value)

    @field_validator("ALERTS_TOPIC_ARN")
    @classmethod
    def _topic_arn(cls, value: str) -> str:
        if not value.startswith("arn:") or ":sns:" not in value:
            raise ValueError("must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        return value

    @field_validator("CHAT_TOPIC_ARN", mode="before")
    @classmethod
    def _chat_topic_arn(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and (not value.startswith("arn:") or ":sns:" not in value):
            raise ValueError("must be empty or an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        return value

    @field_validator("SECURITY_HUB_PRODUCT_ARN", mode="before")
    @classmethod
    def _product_arn(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not re.fullmatch(
            r"arn:[\w-]+:securityhub:[\w-]+:(\d{12}):product/\1/default", value
        ):
            raise ValueError(
                "must be empty or arn:<partition>:securityhub:<region>:<account>:product/<account>/default"
            )
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


class RevertConfig(OrganizationConfig):
    """Opt-in revert of overwritten protected tags (template parameters RevertProtectedTags and
    RevertRepositoryPrefixes): the push guard asks for reverts, the tag reverter performs them, both only in
    the stack's own registry (TAGWARDEN_ACCOUNT_ID and AWS_REGION). Prefixes are string prefixes."""

    REVERT_REPOSITORY_PREFIXES: tuple[str, ...] = ()

    @field_validator("REVERT_REPOSITORY_PREFIXES", mode="before")
    @classmethod
    def _revert_prefixes(cls, value: object) -> object:
        return split_patterns(value) if isinstance(value, str) else value

    @property
    def revert_scope(self) -> RevertScope:
        """The repositories whose protected tags are put back."""
        return RevertScope(self.REVERT_REPOSITORY_PREFIXES, self.TAGWARDEN_ACCOUNT_ID, self.AWS_REGION)

    def _home_known(self) -> bool:
        return self.TAGWARDEN_ACCOUNT_ID is not None and bool(self.AWS_REGION)


class PushGuardConfig(LedgerConfig, RevertConfig, OrganizationConfig):
    """The shared configuration; with REVERT_PROTECTED_TAGS the prefixes and the reverter's queue; a member
    account's manifests are read through its read role (OrganizationConfig)."""

    REVERT_PROTECTED_TAGS: bool = False
    REVERT_QUEUE_URL: str = ""

    @model_validator(mode="after")
    def _revert_needs_scope_and_queue(self) -> Self:
        if self.REVERT_PROTECTED_TAGS and not (self.REVERT_REPOSITORY_PREFIXES and self.REVERT_QUEUE_URL):
            raise ValueError("REVERT_PROTECTED_TAGS needs REVERT_REPOSITORY_PREFIXES and REVERT_QUEUE_URL")
        if self.REVERT_PROTECTED_TAGS and not self._home_known():
            # Without them no image is the stack's own, and nothing would ever be reverted: say so at cold start.
            raise ValueError("REVERT_PROTECTED_TAGS needs TAGWARDEN_ACCOUNT_ID and AWS_REGION (the stack's registry)")
        return self


class TagReverterConfig(LedgerConfig, RevertConfig):
    """The tag reverter: the prefixes it may revert in, and how many receives a request gets (the queue's
    maxReceiveCount): the last one publishes the alert even if the revert keeps failing."""

    REVERT_MAX_ATTEMPTS: int = 5

    @model_validator(mode="after")
    def _needs_prefixes(self) -> Self:
        if not self.REVERT_REPOSITORY_PREFIXES:
            raise ValueError("REVERT_REPOSITORY_PREFIXES is not set")
        if not self._home_known():
            raise ValueError("TAGWARDEN_ACCOUNT_ID and AWS_REGION (the stack's own registry) must be set")
        return self


class ScanRecorderConfig(LedgerConfig):
    """The scan recorder judges scans with FAIL_SEVERITY (shared)."""


# --- The admission webhook (an in-cluster server, not a function) ---------------------------------------

DEFAULT_EXEMPT_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "tagwarden")
# The webhook configuration's `timeoutSeconds` is 5: a decision, ledger retry included, must come well before.
MAX_LEDGER_TIMEOUT_SECONDS = 2.5


class AdmissionConfig(DetectionConfig):
    """The admission webhook reads the ledger only: no alerts topic (nothing on its hot path publishes)."""

    LEDGER_TABLE_NAME: str
    # Namespaces never judged, even if a webhook selector let them through (the webhook's own among them).
    ADMISSION_EXEMPT_NAMESPACES: frozenset[str] = frozenset(DEFAULT_EXEMPT_NAMESPACES)
    # The time one ledger read attempt may take (two attempts at most; see aws_clients.admission_config).
    ADMISSION_LEDGER_TIMEOUT_SECONDS: float = 2.0
    # Also pin workload pod templates (Argo CD and Flux then see drift unless told to ignore image fields).
    ADMISSION_PIN_TEMPLATES: bool = False
    # The region of the ledger (boto3 otherwise reads AWS_DEFAULT_REGION or its configuration files).
    AWS_REGION: str | None = None

    @field_validator("LEDGER_TABLE_NAME")
    @classmethod
    def _table_name(cls, value: str) -> str:
        return table_name(value)

    @field_validator("ADMISSION_EXEMPT_NAMESPACES", mode="before")
    @classmethod
    def _namespaces(cls, value: object) -> object:
        return frozenset(split_patterns(value)) if isinstance(value, str) else value

    @field_validator("ADMISSION_LEDGER_TIMEOUT_SECONDS")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not 0 < value <= MAX_LEDGER_TIMEOUT_SECONDS:
            raise ValueError(
                f"must be more than 0 and at most {MAX_LEDGER_TIMEOUT_SECONDS} seconds (the webhook times out at 5)"
            )
        return value


class TrailWatcherConfig(LedgerConfig):
    """The trail watcher judges settings against PROTECTED_TAG_PATTERNS and MUTABLE_TAG_PATTERNS (shared)."""


class AuditWatcherConfig(LedgerConfig, OrganizationConfig):
    """The audit watcher also reads EXTRA_MONITORED_REGISTRIES, EXCLUDED_IMAGE_PREFIXES, MONITORED_ACCOUNTS, and
    TAGWARDEN_ACCOUNT_ID to tell member accounts' clusters from the stack's own."""
