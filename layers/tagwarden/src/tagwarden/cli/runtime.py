"""What the command works with: an AWS session from the global options, its clients, the ledger and services.

The services come from the one composition root (`tagwarden.services.wiring`), as the functions' do, with a
session from `--profile`/`--region`, `--endpoint-url`, and an alert delivery chosen per run (see
`AlertRoute`): the alerts topic, or withheld into a collector.
Everything is created on first use, so a command that fails early makes no AWS call, and boto3 is
imported only when a client is needed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tagwarden.adapters.alert_collector import AlertCollector
from tagwarden.cli.errors import usage_error
from tagwarden.config import ConfigurationError, DetectionConfig

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_sns import SNSClient

    from tagwarden.adapters.dynamodb.reader import DynamoDbLedgerReader
    from tagwarden.adapters.dynamodb.table import LedgerTable
    from tagwarden.adapters.ecr_registry import EcrRegistry
    from tagwarden.events.audit import Home
    from tagwarden.services.alert_delivery import AlertDelivery
    from tagwarden.services.audit_watcher import AuditWatcher
    from tagwarden.services.ledger_queries import LedgerQueries
    from tagwarden.services.push_guard import PushGuard
    from tagwarden.services.scan_recorder import ScanRecorder
    from tagwarden.services.trail_watcher import TrailWatcher


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """The options every command takes."""

    json_output: bool = False
    stack_name: str | None = None
    table: str | None = None
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True)
class AlertRoute:
    """Where the alerts a run raises go: to the alerts topic, or nowhere (`collector` keeps them to show)."""

    topic_arn: str | None
    collector: AlertCollector | None

    @property
    def publishes(self) -> bool:
        """True when alerts reach the alerts topic."""
        return self.collector is None


def detection_config(environ: Mapping[str, str]) -> DetectionConfig:
    """The functions' tag policy, fail severity and watched registries: same variables, same defaults."""
    try:
        return DetectionConfig.from_env(environ)
    except ConfigurationError as error:
        raise usage_error(str(error)) from None


class Runtime:
    """The session, clients, ledger and services of one command run."""

    def __init__(self, options: GlobalOptions, environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self._environ = os.environ if environ is None else environ

    @cached_property
    def session(self) -> boto3.Session:
        """The AWS session of `--profile` and `--region` (else the usual AWS_* variables and config files)."""
        import boto3

        # AWS_REGION is what the AWS CLI and most SDKs read; boto3 reads only AWS_DEFAULT_REGION.
        region = self.options.region or self._environ.get("AWS_REGION") or None
        session = boto3.Session(profile_name=self.options.profile, region_name=region)
        if not session.region_name:  # unset, or set to an empty string
            raise usage_error("no AWS region: pass --region or set AWS_REGION")
        return session

    @property
    def region(self) -> str:
        """The region every client works in."""
        region: str = self.session.region_name
        return region

    def client(self, service: str, *, adaptive: bool = False, config: Config | None = None) -> Any:
        """A client of the session; `--endpoint-url`, when given, applies to every service."""
        from tagwarden.adapters.aws_clients import client_config

        # A person waits on the command: a little more patience per call than a Lambda function has.
        config = config or client_config(adaptive=adaptive, connect_timeout=5, read_timeout=30)
        try:
            return self.session.client(service, endpoint_url=self.options.endpoint_url, config=config)  # type: ignore[call-overload]
        except ValueError as error:  # botocore's "Invalid endpoint", from --endpoint-url or AWS_ENDPOINT_URL*
            raise usage_error(f"endpoint: {error}") from None

    @cached_property
    def _stack(self) -> tuple[dict[str, str], dict[str, str]]:
        from tagwarden.adapters.stack_outputs import read_stack

        if self.options.stack_name is None:
            return {}, {}
        client: CloudFormationClient = self.client("cloudformation")
        return read_stack(client, self.options.stack_name)

    @property
    def stack_outputs(self) -> dict[str, str]:
        """The outputs of `--stack-name` (empty without one)."""
        return self._stack[0]

    @property
    def stack_parameters(self) -> dict[str, str]:
        """The parameters of `--stack-name` (empty without one)."""
        return self._stack[1]

    @property
    def policy_environment(self) -> Mapping[str, str]:
        """The functions' policy variables: the deployed stack's parameters with `--stack-name` (what the
        functions really use), else this command's environment."""
        from tagwarden.adapters.stack_outputs import policy_variables

        return {**self._environ, **policy_variables(self.stack_parameters)}

    @cached_property
    def table_name(self) -> str:
        """The ledger table: `--table`, or the stack's `LedgerTableName` output."""
        from tagwarden.adapters.stack_outputs import LEDGER_TABLE_OUTPUT

        if self.options.table and self.options.stack_name:
            raise usage_error("give --table or --stack-name, not both")
        if self.options.table:
            return self.options.table
        if self.options.stack_name is None:
            raise usage_error(
                "no ledger: pass --stack-name or --table (or set TAGWARDEN_STACK_NAME or TAGWARDEN_TABLE)"
            )
        table = self.stack_outputs.get(LEDGER_TABLE_OUTPUT)
        if not table:
            raise usage_error(
                f"stack {self.options.stack_name!r} has no {LEDGER_TABLE_OUTPUT} output: not a Tagwarden stack?"
            )
        return table

    def ledger_description(self) -> str:
        """The ledger, as failure messages name it."""
        table = self.__dict__.get("table_name") or self.options.table or "(unresolved)"
        region = self.session.region_name if "session" in self.__dict__ else self.options.region
        return f"ledger table {table!r} in {region or 'the default region'}"

    @cached_property
    def table(self) -> LedgerTable:
        """The ledger's DynamoDB table, shared by every adapter of the run."""
        from tagwarden.adapters.dynamodb.table import LedgerTable

        client: DynamoDBClient = self.client("dynamodb")
        return LedgerTable(client, self.table_name)

    @cached_property
    def ledger(self) -> DynamoDbLedgerReader:
        """The ledger's read side (what the queries and the backfill read)."""
        from tagwarden.adapters.dynamodb.reader import DynamoDbLedgerReader

        return DynamoDbLedgerReader(self.table)

    def queries(self) -> LedgerQueries:
        """The read-side queries on the ledger."""
        from tagwarden.services.ledger_queries import LedgerQueries

        return LedgerQueries(self.ledger)

    def registry(self) -> EcrRegistry:
        """The ECR registry of the session's account and region, with adaptive retries."""
        from tagwarden.adapters.ecr_registry import EcrRegistry

        client: ECRClient = self.client("ecr", adaptive=True)
        return EcrRegistry(client)

    def alert_route(self, topic_arn: str | None, publish: bool) -> AlertRoute:
        """Publish to `--topic-arn` or the stack's `AlertsTopicArn`; with neither, or `--no-publish`, withhold."""
        from tagwarden.adapters.stack_outputs import ALERTS_TOPIC_OUTPUT

        topic = topic_arn or self.stack_outputs.get(ALERTS_TOPIC_OUTPUT)
        if topic is not None and not (topic.startswith("arn:") and ":sns:" in topic):
            raise usage_error(f"--topic-arn: {topic!r} is not an SNS topic ARN")
        if publish and topic:
            return AlertRoute(topic, None)
        return AlertRoute(topic, AlertCollector())

    @cached_property
    def sns(self) -> SNSClient:
        """The SNS client alerts are published with (bounded like the functions': within the delivery lease)."""
        from tagwarden.adapters.aws_clients import publish_config

        client: SNSClient = self.client("sns", config=publish_config())
        return client

    def delivery(self, route: AlertRoute) -> AlertDelivery:
        """Alerts to the topic, or withheld into the route's collector (left undelivered on the ledger)."""
        from tagwarden.adapters.sns_publisher import SnsAlertPublisher
        from tagwarden.services.alert_delivery import DeliveryMode
        from tagwarden.services.wiring import alert_delivery

        if route.collector is None:
            assert route.topic_arn is not None
            return alert_delivery(self.table, SnsAlertPublisher(self.sns, route.topic_arn))
        return alert_delivery(self.table, route.collector, DeliveryMode.WITHHOLD)

    def services(self, route: AlertRoute) -> tuple[PushGuard, ScanRecorder]:
        """The push guard and the scan recorder on the ledger, publishing (or withholding) per `route`."""
        from tagwarden.services.wiring import compose_push_guard, compose_scan_recorder

        config = detection_config(self.policy_environment)
        delivery = self.delivery(route)
        # With the registry, as the function has it: image indexes are recorded with their platforms.
        push_guard = compose_push_guard(self.table, delivery, config, manifests=self.registry())
        return push_guard, compose_scan_recorder(self.table, delivery, config)

    def audit_home(self) -> Home:
        """The stack's account and region, which replayed audit deliveries of member accounts are told apart
        from: TAGWARDEN_ACCOUNT_ID, else the account of `--stack-name`'s ledger table; unknown otherwise (then
        `replay` refuses a delivery whose owner is an account id, and raw lines keep their bare cluster name)."""
        from tagwarden.events.audit import Home

        account = self._environ.get("TAGWARDEN_ACCOUNT_ID") or None
        table_arn = self.stack_outputs.get("LedgerTableArn", "")
        if account is None and table_arn.startswith("arn:") and table_arn.count(":") >= 5:
            account = table_arn.split(":")[4] or None
        return Home(account, self.region)

    def audit_watcher(self, route: AlertRoute) -> AuditWatcher:
        """The audit watcher as the function has it, publishing (or withholding) per `route`."""
        from tagwarden.services.wiring import compose_audit_watcher

        return compose_audit_watcher(self.table, self.delivery(route), detection_config(self.policy_environment))

    def trail_watcher(self, route: AlertRoute) -> TrailWatcher:
        """The trail watcher as the function has it, publishing (or withholding) per `route`."""
        from tagwarden.services.wiring import compose_trail_watcher

        return compose_trail_watcher(self.table, self.delivery(route), detection_config(self.policy_environment))


@contextmanager
def quiet_core() -> Iterator[None]:
    """The core logs JSON lines for CloudWatch and metrics as EMF on stdout: a terminal wants neither.

    Logs stay off unless POWERTOOLS_LOG_LEVEL asks for them, and then go to stderr; metrics are discarded
    (see `discard_metrics`). Both are restored afterwards, for callers that run in the same process.
    """
    from tagwarden.observability import logger

    # The standard library logger under Powertools' wrapper: its level and handler, saved and restored as is.
    core = logging.getLogger(logger.name)
    handler = logger.registered_handler
    level = core.level
    stream = handler.stream if isinstance(handler, logging.StreamHandler) else None
    if isinstance(handler, logging.StreamHandler):
        # Not `setStream`, which flushes the old stream first: that may be closed by now (under a test runner,
        # the stdout it had captured when the logger was created).
        handler.stream = sys.stderr
    if "POWERTOOLS_LOG_LEVEL" not in os.environ:
        core.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        discard_metrics()
        core.setLevel(level)
        if isinstance(handler, logging.StreamHandler) and stream is not None:
            handler.flush()
            handler.stream = stream


def discard_metrics() -> None:
    """Drop the metrics the services added: the Powertools buffer prints EMF to stdout once 100 pile up."""
    from tagwarden.observability import metrics

    metrics.clear_metrics()
