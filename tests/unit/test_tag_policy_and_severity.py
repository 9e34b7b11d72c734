"""The tag policy and the severity table of tag moves (the README's table)."""

from __future__ import annotations

import pytest
from tagwarden.config import ConfigurationError, PushGuardConfig
from tagwarden.domain.rules import tag_move_severity
from tagwarden.domain.severity import Severity
from tagwarden.domain.tag_policy import TagClass, TagPolicy


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("v1.2.3", TagClass.PROTECTED),
        ("1.2.3", TagClass.PROTECTED),
        ("1.2", TagClass.PROTECTED),
        ("latest", TagClass.MUTABLE),
        ("main-4f2a1c", TagClass.ORDINARY),
        ("v1", TagClass.ORDINARY),
    ],
)
def test_default_policy(tag: str, expected: TagClass) -> None:
    assert TagPolicy().classify(tag) is expected


def test_protected_wins_over_mutable() -> None:
    assert TagPolicy(protected=("prod*",), mutable=("*",)).classify("prod") is TagClass.PROTECTED


@pytest.mark.parametrize(
    ("tag_class", "previous_scanned", "current_passing", "severity"),
    [
        (TagClass.PROTECTED, True, False, Severity.CRITICAL),
        (TagClass.PROTECTED, True, True, Severity.CRITICAL),
        (TagClass.PROTECTED, False, False, Severity.HIGH),
        (TagClass.PROTECTED, False, True, Severity.HIGH),
        (TagClass.MUTABLE, True, True, Severity.INFO),
        (TagClass.ORDINARY, False, True, Severity.INFO),
        (TagClass.MUTABLE, True, False, Severity.LOW),
        (TagClass.MUTABLE, False, False, Severity.LOW),
        (TagClass.ORDINARY, True, False, Severity.MEDIUM),
        (TagClass.ORDINARY, False, False, Severity.MEDIUM),
    ],
)
def test_severity_table(tag_class: TagClass, previous_scanned: bool, current_passing: bool, severity: Severity) -> None:
    assert tag_move_severity(tag_class, previous_scanned, current_passing) is severity


def test_severity_raises_one_step_and_caps() -> None:
    assert Severity.LOW.raised() is Severity.MEDIUM
    assert Severity.CRITICAL.raised() is Severity.CRITICAL


def test_config_reads_patterns_and_names_missing_variables() -> None:
    config = PushGuardConfig.from_env(
        {
            "LEDGER_TABLE_NAME": "ledger",
            "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts",
            "PROTECTED_TAG_PATTERNS": " prod , release-* ,",
            "MUTABLE_TAG_PATTERNS": "latest,dev-*",
        }
    )
    assert config.tag_policy == TagPolicy(protected=("prod", "release-*"), mutable=("latest", "dev-*"))
    with pytest.raises(ConfigurationError, match="LEDGER_TABLE_NAME: is not set"):
        PushGuardConfig.from_env({"ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"})
    with pytest.raises(ConfigurationError, match=r"ALERTS_TOPIC_ARN: .*SNS topic ARN"):
        PushGuardConfig.from_env({"LEDGER_TABLE_NAME": "ledger", "ALERTS_TOPIC_ARN": "alerts"})


def test_finding_counts_read_most_severe_first_everywhere() -> None:
    from tagwarden.domain.scans import severity_counts

    counts = {"LOW": 4, "UNDEFINED": 1, "CRITICAL": 1, "INFORMATIONAL": 7, "HIGH": 2, "MEDIUM": 3}
    assert severity_counts(counts) == "1 CRITICAL, 2 HIGH, 3 MEDIUM, 4 LOW, 7 INFORMATIONAL, 1 UNDEFINED"


SIGNED = "97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36"


@pytest.mark.parametrize(
    "tag",
    [
        # cosign's tag-based discovery (SIGNATURE_SPEC.md) and `cosign attach --type attestation|sbom`.
        f"sha256-{SIGNED}.sig",
        f"sha256-{SIGNED}.att",
        f"sha256-{SIGNED}.sbom",
        # With `--attachment-tag-prefix`.
        f"signed-sha256-{SIGNED}.sig",
        # The OCI 1.1 referrers fallback tag (distribution-spec "Referrers Tag Schema"), sha512 truncated to 64.
        f"sha256-{SIGNED}",
        f"sha512-{SIGNED}",
    ],
)
def test_signature_and_attestation_tags_are_their_own_class(tag: str) -> None:
    assert TagPolicy().classify(tag) is TagClass.SIGNATURE
    # Even a catch-all protected pattern does not make a signature tag protected.
    assert TagPolicy(protected=("*",)).classify(tag) is TagClass.SIGNATURE


def test_signature_tags_move_at_most_at_low() -> None:
    assert tag_move_severity(TagClass.SIGNATURE, True, False) is Severity.LOW
    assert tag_move_severity(TagClass.SIGNATURE, False, True) is Severity.INFO


def test_signature_patterns_are_configurable_and_can_be_switched_off() -> None:
    base = {"LEDGER_TABLE_NAME": "ledger", "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts"}
    off = PushGuardConfig.from_env({**base, "SIGNATURE_TAG_PATTERNS": ""}).tag_policy
    assert off.classify(f"sha256-{SIGNED}.sig") is TagClass.ORDINARY
    custom = PushGuardConfig.from_env({**base, "SIGNATURE_TAG_PATTERNS": "*.sig"}).tag_policy
    assert custom.classify(f"sha256-{SIGNED}.sig") is TagClass.SIGNATURE
    assert custom.classify(f"sha256-{SIGNED}") is TagClass.ORDINARY
    # A pattern alone never makes a tag a signature tag: it must embed a whole digest.
    assert custom.classify("release.sig") is TagClass.ORDINARY


@pytest.mark.parametrize("tag", ["sha256-prod", "sha256-latest", "release-sha256-fix.sig", "v1-sha256-x.att"])
def test_a_tag_named_like_a_signature_without_a_digest_is_not_one(tag: str) -> None:
    assert TagPolicy().classify(tag) is not TagClass.SIGNATURE
