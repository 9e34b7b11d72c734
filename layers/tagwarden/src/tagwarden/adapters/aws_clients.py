"""One place that creates AWS clients: lazily (boto3 costs cold-start time), with bounded retries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_securityhub import SecurityHubClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# Standard mode retries throttling and 5xx with jittered backoff; five attempts bound the time a Lambda
# spends on one call before the event itself is retried by Lambda.
RETRY_ATTEMPTS = 5
# Adaptive mode also slows the client down under throttling: for long listings (the CLI's ECR backfill).
ADAPTIVE_RETRY_ATTEMPTS = 10
# Publishing an alert must end well within the writer's 30-second delivery lease (services.alert_delivery),
# or a duplicate delivery could take the delivery over and publish the same alert again: three attempts of
# at most 2 s to connect and 5 s to read, plus standard mode's backoff (at most 1 s, then 2 s).
PUBLISH_RETRY_ATTEMPTS = 3
PUBLISH_CONNECT_TIMEOUT = 2
PUBLISH_READ_TIMEOUT = 5


def client_config(
    *, adaptive: bool = False, connect_timeout: int = 3, read_timeout: int = 10, attempts: int = RETRY_ATTEMPTS
) -> Config:
    """The retry and timeout settings every Tagwarden AWS client uses."""
    from botocore.config import Config

    retries: Any = (
        {"mode": "adaptive", "total_max_attempts": ADAPTIVE_RETRY_ATTEMPTS}
        if adaptive
        else {"mode": "standard", "total_max_attempts": attempts}
    )
    return Config(retries=retries, connect_timeout=connect_timeout, read_timeout=read_timeout)


def publish_config() -> Config:
    """The settings of a client that publishes alerts: every publish ends within the delivery lease."""
    return client_config(
        connect_timeout=PUBLISH_CONNECT_TIMEOUT, read_timeout=PUBLISH_READ_TIMEOUT, attempts=PUBLISH_RETRY_ATTEMPTS
    )


def _client(
    service: str, endpoint_url: str | None = None, config: Config | None = None, region: str | None = None
) -> Any:
    import boto3

    # Without an explicit endpoint, boto3 honours AWS_ENDPOINT_URL_<SERVICE> (DynamoDB Local, moto server).
    return boto3.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, config=config or client_config(), region_name=region
    )


def dynamodb_client(endpoint_url: str | None = None) -> DynamoDBClient:
    """A DynamoDB client (endpoint overridable for DynamoDB Local)."""
    client: DynamoDBClient = _client("dynamodb", endpoint_url)
    return client


def sns_client(endpoint_url: str | None = None) -> SNSClient:
    """An SNS client whose publish always ends within the alert delivery lease (see PUBLISH_RETRY_ATTEMPTS)."""
    client: SNSClient = _client("sns", endpoint_url, publish_config())
    return client


def ecr_client(endpoint_url: str | None = None) -> ECRClient:
    """An ECR client (the push guard reads image indexes and, on same-second ties, where a tag points)."""
    client: ECRClient = _client("ecr", endpoint_url)
    return client


# The admission webhook answers the API server within the webhook's `timeoutSeconds` (5): two attempts of
# at most a quarter of the budget to connect and half of it to read, plus standard mode's first backoff
# (at most 1 s): 1.5 x budget + 1 s, 4 s for the default 2 s budget.
ADMISSION_RETRY_ATTEMPTS = 2


def admission_config(budget_seconds: float) -> Config:
    """The settings of the webhook's DynamoDB client: a decision always comes before the API server gives up."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": ADMISSION_RETRY_ATTEMPTS},
        connect_timeout=budget_seconds / 4,
        read_timeout=budget_seconds / 2,
        # One connection per concurrent review: the API server sends reviews in parallel.
        max_pool_connections=32,
        tcp_keepalive=True,
    )


def admission_dynamodb_client(
    budget_seconds: float, region: str | None = None, endpoint_url: str | None = None
) -> DynamoDBClient:
    """The webhook's DynamoDB client (credentials from boto3's default chain: EKS Pod Identity in a cluster)."""
    client: DynamoDBClient = _client("dynamodb", endpoint_url, admission_config(budget_seconds), region)
    return client


def sqs_client(endpoint_url: str | None = None) -> SQSClient:
    """An SQS client (the push guard hands revert requests to the tag reverter's queue)."""
    client: SQSClient = _client("sqs", endpoint_url)
    return client


def securityhub_client(endpoint_url: str | None = None) -> SecurityHubClient:
    """A Security Hub client for importing alerts, bounded like the SNS client: the alert sinks are called
    concurrently (adapters.alert_sinks), so each one's bound must end within the delivery lease on its own."""
    client: SecurityHubClient = _client("securityhub", endpoint_url, publish_config())
    return client
