"""The webhook's configuration and its DynamoDB client: read once, failing with the variable's name, and
always answering before the API server's 5-second webhook timeout."""

from __future__ import annotations

from typing import Any

import pytest
from tagwarden.adapters.aws_clients import admission_dynamodb_client
from tagwarden.config import MAX_LEDGER_TIMEOUT_SECONDS, AdmissionConfig, ConfigurationError

WEBHOOK_TIMEOUT_SECONDS = 5


def test_defaults_exempt_the_system_namespaces_and_the_webhooks_own() -> None:
    config = AdmissionConfig.from_env({"LEDGER_TABLE_NAME": "tagwarden-ledger"})

    assert {"kube-system", "kube-public", "kube-node-lease", "tagwarden"} == config.ADMISSION_EXEMPT_NAMESPACES
    assert config.ADMISSION_LEDGER_TIMEOUT_SECONDS == 2 and config.ADMISSION_PIN_TEMPLATES is False


def test_settings_are_read_from_the_environment() -> None:
    config = AdmissionConfig.from_env(
        {
            "LEDGER_TABLE_NAME": "tagwarden-ledger",
            "ADMISSION_EXEMPT_NAMESPACES": "kube-system, platform",
            "ADMISSION_LEDGER_TIMEOUT_SECONDS": "1.5",
            "ADMISSION_PIN_TEMPLATES": "true",
            "AWS_REGION": "eu-west-1",
            "EXTRA_MONITORED_REGISTRIES": "ghcr.io",
        }
    )

    assert {"kube-system", "platform"} == config.ADMISSION_EXEMPT_NAMESPACES
    assert config.ADMISSION_PIN_TEMPLATES is True and config.registry_scope.extra_registries == {"ghcr.io"}


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "LEDGER_TABLE_NAME"),
        ({"LEDGER_TABLE_NAME": "tagwarden-ledger", "ADMISSION_LEDGER_TIMEOUT_SECONDS": "5"}, "ADMISSION_LEDGER"),
        ({"LEDGER_TABLE_NAME": "tagwarden-ledger", "ADMISSION_PIN_TEMPLATES": "maybe"}, "ADMISSION_PIN_TEMPLATES"),
    ],
)
def test_a_bad_variable_is_named(environment: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        AdmissionConfig.from_env(environment)


@pytest.mark.parametrize("budget", [0.5, 2.0, MAX_LEDGER_TIMEOUT_SECONDS])
def test_a_ledger_read_always_ends_before_the_webhook_times_out(budget: float) -> None:
    config: Any = admission_dynamodb_client(budget, "eu-west-1", "http://127.0.0.1:1").meta.config
    attempts = config.retries["total_max_attempts"]
    # Standard retry mode backs off at most 2**(n-1) seconds before attempt n+1.
    backoff = sum(min(20, 2 ** (n - 1)) for n in range(1, attempts))

    worst = attempts * (config.connect_timeout + config.read_timeout) + backoff

    assert worst < WEBHOOK_TIMEOUT_SECONDS, worst
