"""`python -m tagwarden.admission --port 8443 --tls-cert PATH --tls-key PATH`: the webhook's entry point.

Like a function's handler: read the configuration once (failing with the variable's name), build the
service, serve. SIGTERM (a pod being stopped) first makes `/readyz` fail for `--drain-seconds`, so the
Service stops sending reviews here (answers then close their connections), then stops accepting
connections, ends the idle ones and lets the reviews in flight finish.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from botocore.exceptions import BotoCoreError

from tagwarden.admission.server import MAX_CONNECTIONS, REQUEST_SECONDS, AdmissionServer, ServingCertificate
from tagwarden.config import AdmissionConfig, ConfigurationError
from tagwarden.services.wiring import build_admission

DEFAULT_DRAIN_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; exit 2 on a configuration error."""
    parser = argparse.ArgumentParser(prog="python -m tagwarden.admission", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")  # noqa: S104 - a pod's own network namespace
    parser.add_argument("--tls-cert", required=True, help="serving certificate (PEM, chain after the leaf)")
    parser.add_argument("--tls-key", required=True, help="its private key (PEM)")
    parser.add_argument("--drain-seconds", type=float, default=DEFAULT_DRAIN_SECONDS)
    parser.add_argument(
        "--request-seconds", type=float, default=REQUEST_SECONDS, help="time for a request's headers and body"
    )
    parser.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, help="connections served at once")
    args = parser.parse_args(argv)
    try:
        config = AdmissionConfig.from_env()
        certificate = ServingCertificate(args.tls_cert, args.tls_key)
    except (ConfigurationError, OSError) as error:
        print(f"tagwarden admission: {error}", file=sys.stderr)
        return 2
    try:
        service = build_admission(config)
    except (BotoCoreError, OSError, ValueError) as error:
        # No credentials (Pod Identity's agent down, its token file missing or unreadable): one line, exit 2.
        print(f"tagwarden admission: AWS credentials: {type(error).__name__}: {str(error)[:300]}", file=sys.stderr)
        return 2
    server = AdmissionServer((args.host, args.port), service, certificate, args.request_seconds, args.max_connections)
    stopping = threading.Event()

    def drain_then_stop() -> None:
        server.draining.set()
        service.log_event("draining", seconds=args.drain_seconds)
        time.sleep(args.drain_seconds)
        server.shutdown()
        server.close_idle()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever's loop, which this (main) thread runs: stop from another one.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=drain_then_stop, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.log_event("listening", port=server.server_address[1], pin_templates=config.ADMISSION_PIN_TEMPLATES)
    server.serve_forever()
    server.server_close()
    service.log_event("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
