"""The package's layering, read from its imports: what each layer may depend on (STYLE.md, ports.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tests.support.template import REPO_ROOT

PACKAGE = REPO_ROOT / "layers" / "tagwarden" / "src" / "tagwarden"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local and TYPE_CHECKING imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_knows_no_aws_no_event_shapes_and_no_outer_layer(path: Path) -> None:
    forbidden = ("boto3", "botocore", "tagwarden.adapters", "tagwarden.services", "tagwarden.events", "tagwarden.cli")
    assert not {name for name in imports_of(path) if name.startswith(forbidden)}


@pytest.mark.parametrize("path", modules("adapters"), ids=lambda p: p.name)
def test_adapters_never_import_a_service_or_the_command(path: Path) -> None:
    assert not {name for name in imports_of(path) if name.startswith(("tagwarden.services", "tagwarden.cli"))}


def test_alert_delivery_state_lives_in_the_outbox_alone() -> None:
    # The lease, delivered flag and partial progress are the outbox's: domain objects never carry them.
    delivery_words = ("alerts_delivered", "alerts_lease_until", "alerts_published", "lease_until")
    for path in modules("domain"):
        text = path.read_text()
        assert not [word for word in delivery_words if word in text], path.name
    writers = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "alerts_delivered" in p.read_text()}
    assert writers == {"adapters/dynamodb/outbox.py"}


def test_an_alert_publish_ends_within_the_delivery_lease() -> None:
    from tagwarden.adapters.aws_clients import sns_client
    from tagwarden.services.alert_delivery import ALERT_LEASE

    config: Any = sns_client(endpoint_url="http://127.0.0.1:1").meta.config
    attempts = config.retries["total_max_attempts"]
    # Standard retry mode backs off at most 2**(n-1) seconds before attempt n+1 (capped at 20 s).
    backoff = sum(min(20, 2 ** (n - 1)) for n in range(1, attempts))
    worst = attempts * (config.connect_timeout + config.read_timeout) + backoff
    assert worst < ALERT_LEASE.total_seconds() * 0.9, worst


def test_every_alert_sink_publishes_within_the_delivery_lease_and_they_publish_together() -> None:
    # The sinks are called concurrently (adapters.alert_sinks), so each client's own bound must hold; called
    # one after another, their bounds would add up past the lease.
    import inspect

    from tagwarden.adapters import alert_sinks
    from tagwarden.adapters.aws_clients import securityhub_client, sns_client
    from tagwarden.services.alert_delivery import ALERT_LEASE

    for client in (
        sns_client(endpoint_url="http://127.0.0.1:1"),
        securityhub_client(endpoint_url="http://127.0.0.1:1"),
    ):
        config: Any = client.meta.config
        attempts = config.retries["total_max_attempts"]
        backoff = sum(min(20, 2 ** (n - 1)) for n in range(1, attempts))
        worst = attempts * (config.connect_timeout + config.read_timeout) + backoff
        assert worst < ALERT_LEASE.total_seconds() * 0.9, (client.meta.service_model.service_name, worst)
    assert "ThreadPoolExecutor" in inspect.getsource(alert_sinks.FanOutAlertPublisher.publish)
