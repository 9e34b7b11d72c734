"""One place that creates AWS clients: lazily (boto3 costs cold-start time), with bounded retries."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_securityhub import SecurityHubClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

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
    service: str, endpoint_url: str | None = None, config: Config | None = None, region_name: str | None = None
) -> Any:
    import boto3

    # Without an explicit endpoint, boto3 honours AWS_ENDPOINT_URL_<SERVICE> (DynamoDB Local, moto server).
    return boto3.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, config=config or client_config(), region_name=region_name
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


# The credentials the webhook signs with come from EKS Pod Identity's agent (the container provider). botocore
# would give each fetch 2 s and 3 attempts with 1 s sleeps (up to 8 s, past the API server's 5 s), and
# refreshes credentials in the request's thread in their last 15 minutes; here a fetch is one attempt of
# CREDENTIAL_FETCH_TIMEOUT_SECONDS (to connect, then to read), and a daemon thread refreshes them every
# CREDENTIAL_REFRESH_SECONDS, so a review only ever fetches when the agent was down for minutes.
CREDENTIAL_FETCH_TIMEOUT_SECONDS = 0.5
CREDENTIAL_REFRESH_SECONDS = 60.0


def admission_dynamodb_client(
    budget_seconds: float, region: str | None = None, endpoint_url: str | None = None
) -> DynamoDBClient:
    """The webhook's DynamoDB client (credentials from boto3's default chain: EKS Pod Identity in a cluster,
    fetched with bounded timeouts and refreshed in the background).

    Resolves the credentials now: a missing or unreadable token file (OSError, ValueError) or an agent that
    does not answer (botocore's CredentialRetrievalError) fails here, at startup, not in a review.
    """
    import boto3
    from botocore.credentials import ContainerProvider
    from botocore.utils import ContainerMetadataFetcher

    class BoundedFetcher(ContainerMetadataFetcher):
        TIMEOUT_SECONDS = CREDENTIAL_FETCH_TIMEOUT_SECONDS  # type: ignore[assignment]
        RETRY_ATTEMPTS = 1
        SLEEP_TIME = 0

    # boto3's default session, as every other client of the package (and the tests' request counters) uses.
    session = boto3._get_default_session()
    resolver = session._session.get_component("credential_provider")
    # botocore's own container provider, replaced in place (its order in the chain kept).
    bounded: Any = ContainerProvider(fetcher=BoundedFetcher())  # type: ignore[arg-type] # stubs name another fetcher
    resolver.providers = [bounded if p.METHOD == ContainerProvider.METHOD else p for p in resolver.providers]
    credentials = session.get_credentials()
    if credentials is not None:
        threading.Thread(target=_keep_fresh, args=(credentials,), name="credentials", daemon=True).start()
    client: DynamoDBClient = session.client(
        "dynamodb", endpoint_url=endpoint_url, config=admission_config(budget_seconds), region_name=region
    )
    return client


def _keep_fresh(credentials: Any) -> None:
    """Refresh refreshable credentials ahead of the reviews (their advisory window starts 15 minutes before
    expiry); a failed refresh is retried at the next turn, the old credentials serving until they expire."""
    while True:
        time.sleep(CREDENTIAL_REFRESH_SECONDS)
        with contextlib.suppress(Exception):
            credentials.get_frozen_credentials()


def sqs_client(endpoint_url: str | None = None) -> SQSClient:
    """An SQS client (the push guard hands revert requests to the tag reverter's queue)."""
    client: SQSClient = _client("sqs", endpoint_url)
    return client


def securityhub_client(endpoint_url: str | None = None) -> SecurityHubClient:
    """A Security Hub client for importing alerts, bounded like the SNS client: the alert sinks are called
    concurrently (adapters.alert_sinks), so each one's bound must end within the delivery lease on its own."""
    client: SecurityHubClient = _client("securityhub", endpoint_url, publish_config())
    return client


# Assumed-role sessions last an hour; botocore refreshes them in the last 15 minutes (its advisory window),
# so a warm container keeps reading a member's registry without ever presenting expired credentials.
MEMBER_ROLE_SESSION_SECONDS = 3600


class AccountEcrClients:
    """ECR clients per account and region: the function's own credentials for the stack's account, the
    member read role (assumed, cached, refreshed before it expires) for any other account of the organization.

    Without a role name (a single-account deployment) or a known home account, every registry is read with
    the function's own credentials, as before organization support. Clients are created on first use and
    kept for the container's life: one per (account, region), one STS client for every assumption.
    """

    def __init__(
        self,
        home_account: str | None,
        role_name: str | None,
        *,
        partition: str | None = None,
        session_name: str = "tagwarden",
        endpoint_url: str | None = None,
        sts: STSClient | None = None,
    ) -> None:
        self._home_account = home_account
        self._role_name = role_name
        self._partition = partition
        self._session_name = session_name[:64]
        self._endpoint_url = endpoint_url
        self._clients: dict[tuple[str | None, str | None], ECRClient] = {}
        self._sts = sts

    def role_arn(self, account: str) -> str | None:
        """The member read role of `account`, or None when the account is read with the function's own role."""
        if self._role_name is None or self._home_account is None or account == self._home_account:
            return None
        if self._partition is None:
            import boto3

            # The partition of the function's region (aws, aws-cn, aws-us-gov): role ARNs name it.
            session = boto3.session.Session()
            self._partition = session.get_partition_for_region(session.region_name or "us-east-1")
        return f"arn:{self._partition}:iam::{account}:role/{self._role_name}"

    def ecr(self, account: str | None, region: str | None) -> ECRClient:
        """The ECR client for the registry of `account` in `region` (None: the function's own)."""
        key = (account, region)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._create(account, region)
        return client

    def _create(self, account: str | None, region: str | None) -> ECRClient:
        import boto3

        role_arn = self.role_arn(account) if account else None
        if role_arn is None:
            own: ECRClient = _client("ecr", self._endpoint_url, region_name=region)
            return own
        member: ECRClient = boto3.Session(botocore_session=self._assumed_session(role_arn)).client(
            "ecr", region_name=region, endpoint_url=self._endpoint_url, config=client_config()
        )
        return member

    def _assumed_session(self, role_arn: str) -> Any:
        """A botocore session whose credentials come from assuming `role_arn`, refreshed by botocore."""
        import botocore.session
        from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

        sts = self._sts_client()
        session_name = self._session_name

        def assume() -> dict[str, str]:
            credentials = sts.assume_role(
                RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=MEMBER_ROLE_SESSION_SECONDS
            )["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        class MemberRole(CredentialProvider):
            METHOD = "tagwarden-member-role"
            CANONICAL_NAME = "TagwardenMemberRole"

            def load(self) -> DeferredRefreshableCredentials:
                # Deferred: the first AssumeRole happens on the first request, not when the client is made.
                return DeferredRefreshableCredentials(refresh_using=assume, method=self.METHOD)

        session = botocore.session.Session()
        session.register_component("credential_provider", CredentialResolver([MemberRole()]))
        return session

    def _sts_client(self) -> STSClient:
        if self._sts is None:
            self._sts = _client("sts", self._endpoint_url)
        return self._sts


def publish_errors() -> tuple[type[Exception], ...]:
    """What a botocore call raises when it fails: its own errors, an error response, and a response body it
    could not parse (`ResponseParserError`, not a `BotoCoreError`; a proxy's HTML page, a cut response)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def error_code(error: Exception) -> str:
    """A `ClientError`'s AWS error code; empty for any other failure."""
    response: Any = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
