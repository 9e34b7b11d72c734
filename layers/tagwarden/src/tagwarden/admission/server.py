"""The webhook's HTTPS server: stdlib `ThreadingHTTPServer` + `ssl`, thin over `answer`.

| request                               | answer                                                                |
|---------------------------------------|-----------------------------------------------------------------------|
| `POST /admit/enforce`, `/admit/warn`  | 200 AdmissionReview v1, 400 malformed review (query `?timeout=5s` ignored) |
| `GET /healthz`                        | 200 while the process serves                                          |
| `GET /readyz`                         | 200 once configured and serving, 503 draining (never the ledger) |

The serving certificate is read again when its files change (cert-manager renews it in place), and the TLS
handshake happens in the request's thread, so a slow client never holds up the others.

The port is reachable by whatever the NetworkPolicy admits (the API server's address is not known inside
the cluster, so ingress is open) and a review is unauthenticated: the server bounds what one client can
hold. At most MAX_CONNECTIONS connections are served (more are closed at once); a request's headers and
body must arrive within REQUEST_SECONDS of its first byte (a slow-loris client is cut off, not waited for);
bodies above MAX_REVIEW_BYTES are refused unread; and the bodies being read, parsed and decided together
may hold at most BODY_BUDGET_BYTES (a review waits its turn, then is answered 503 if none came).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tagwarden.domain.admission import Mode
from tagwarden.events.admission import (
    MAX_REVIEW_BYTES,
    MalformedReviewError,
    json_patch,
    parse_review,
    review_response,
    subject_of,
)
from tagwarden.services.admission import AdmissionService, ReviewContext

MODE_PATHS = {"/admit/enforce": Mode.ENFORCE, "/admit/warn": Mode.WARN}
# An idle keep-alive connection, or a client that stops sending, is dropped after this long.
CONNECTION_TIMEOUT_SECONDS = 30
# The request line, headers and body of one request, counted from its first byte (the TLS handshake of a
# new connection included). The API server writes a review at once; only a client dripping bytes is slower.
REQUEST_SECONDS = 10.0
# Connections served at once; more are closed as soon as they are accepted. The API server opens one per
# review in flight (and keeps them): 64 per replica is far above a busy cluster's admission concurrency.
MAX_CONNECTIONS = 64
# Bytes of request bodies being read, parsed and decided at once: two of the largest reviews. Parsed, a body
# takes several times its size (measured: README, "Admission webhook"); the Deployment's memory limit
# covers this budget's peak with the process's baseline.
BODY_BUDGET_BYTES = 2 * MAX_REVIEW_BYTES
# How often the watchdog looks for requests past their deadline.
WATCHDOG_SECONDS = 0.5


def answer(service: AdmissionService, body: bytes, mode: Mode) -> tuple[int, dict[str, Any]]:
    """One review: (HTTP status, JSON body). A body that is not an AdmissionReview v1 request is a 400; a
    fault of the server itself is a 500 with a JSON body and one log line (never a traceback on stderr)."""
    try:
        return _answer(service, body, mode)
    except MalformedReviewError as error:
        service.log_rejected(str(error))
        return HTTPStatus.BAD_REQUEST, {"error": str(error)}
    except Exception as error:  # the API server gets an answer whatever went wrong
        service.log_failure(f"{type(error).__name__}: {error}"[:500])
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; the webhook's log has the details"}


def _answer(service: AdmissionService, body: bytes, mode: Mode) -> tuple[int, dict[str, Any]]:
    review = parse_review(body)
    request = review.request
    subject = subject_of(request, service.policy.pin_templates)
    if subject is None:
        return HTTPStatus.OK, review_response(request.uid, None)
    verdict = service.review(subject, mode, ReviewContext(request.uid, request.dry_run))
    return HTTPStatus.OK, review_response(request.uid, verdict, json_patch(request, subject, verdict))


class ServingCertificate:
    """The TLS context of a certificate and key on disk, reloaded when either file changes."""

    def __init__(self, certificate: str, key: str) -> None:
        self._paths = (certificate, key)
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._context = self._load()

    def context(self) -> ssl.SSLContext:
        """The current context; a changed pair of files is loaded (a half-written pair keeps the old one)."""
        stamp = self._mtimes()
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._context = self._load()
                    self._stamp = stamp
                except (OSError, ssl.SSLError):
                    pass
            return self._context

    def _mtimes(self) -> tuple[int, ...]:
        return tuple(os.stat(path).st_mtime_ns for path in self._paths)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*self._paths)
        return context


class ByteBudget:
    """A counting semaphore over bytes: a body is read and handled only while the bytes in flight fit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._condition = threading.Condition()

    def acquire(self, size: int, timeout: float) -> bool:
        """Take `size` bytes (at most the limit) within `timeout` seconds; False when they did not free up."""
        size = min(size, self.limit)
        with self._condition:
            if not self._condition.wait_for(lambda: self._used + size <= self.limit, timeout=max(timeout, 0.0)):
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._condition:
            self._used -= min(size, self.limit)
            self._condition.notify_all()


class AdmissionServer(ThreadingHTTPServer):
    """Answers reviews in a thread each; closing waits for the reviews in flight.

    The API server keeps connections open and reuses them, also to a pod that is stopping: while draining,
    every answer closes its connection (the next review connects to another replica), and `close_idle`
    ends the connections still waiting for a request, so stopping never waits for their idle timeout.

    Each served connection has a deadline (None while its review is being decided); a watchdog thread shuts
    down the ones past it, which ends the blocked read of a client that sends too slowly.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        service: AdmissionService,
        certificate: ServingCertificate,
        request_seconds: float = REQUEST_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.service = service
        self.certificate = certificate
        self.request_seconds = request_seconds
        self.max_connections = max_connections
        self.draining = threading.Event()
        self.bodies = ByteBudget(BODY_BUDGET_BYTES)
        self._connections: dict[socket.socket, float | None] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, AdmissionHandler)
        threading.Thread(target=self._watchdog, name="deadlines", daemon=True).start()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Serve a new connection only below MAX_CONNECTIONS (else it is closed at once, unread)."""
        with self._connections_lock:
            refused = len(self._connections) >= self.max_connections
            if not refused:
                # The handshake and the first request.
                self._connections[request] = time.monotonic() + self.request_seconds
        if refused:
            self.service.log_connection_error(f"more than {self.max_connections} connections: closed a new one")
        return not refused

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def set_deadline(self, connection: socket.socket, seconds: float | None) -> None:
        """The time this connection has left to deliver what it is sending (None: no limit, it is our turn)."""
        with self._connections_lock:
            if connection in self._connections:
                self._connections[connection] = None if seconds is None else time.monotonic() + seconds

    def _watchdog(self) -> None:
        while True:
            time.sleep(WATCHDOG_SECONDS)
            now = time.monotonic()
            with self._connections_lock:
                late = [c for c, deadline in self._connections.items() if deadline is not None and deadline < now]
                for connection in late:
                    self._connections[connection] = None  # shut down once
            for connection in late:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def close_idle(self) -> None:
        """End the reading side of every open connection: one waiting for its next request sees the end of
        its stream and closes; one whose request was read still writes its answer."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The plain socket's shutdown: SSLSocket.shutdown would also drop its TLS state mid-answer.
            try:
                socket.socket.shutdown(connection, socket.SHUT_RD)
            except OSError:
                continue

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        # The handshake runs on the first read, in the request's own thread.
        tls = self.certificate.context().wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return tls, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed handshake or a dropped connection: one line, not a traceback on stderr.
        import sys

        error = sys.exc_info()[1]
        self.service.log_connection_error(f"{type(error).__name__}: {error}"[:300])


class AdmissionHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as the API server's client uses it."""

    protocol_version = "HTTP/1.1"
    server_version = "tagwarden-admission"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT_SECONDS
    # Headers and body leave in two writes: with Nagle's algorithm the second waits for the client's
    # delayed ACK (about 40 ms on Linux), which would be most of a review's time.
    disable_nagle_algorithm = True
    server: AdmissionServer

    def handle_one_request(self) -> None:
        """Wait for a request (idle keep-alive: CONNECTION_TIMEOUT_SECONDS at most, however it trickles in),
        then give its request line, headers and body REQUEST_SECONDS from its first byte."""
        self.server.set_deadline(self.connection, CONNECTION_TIMEOUT_SECONDS)
        try:
            if not self.rfile.peek(1):  # type: ignore[attr-defined]
                self.close_connection = True
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        self.server.set_deadline(self.connection, self.server.request_seconds)
        super().handle_one_request()

    def do_POST(self) -> None:
        """A review, on the path of its namespace's mode."""
        mode = MODE_PATHS.get(urlsplit(self.path).path)
        if mode is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path; POST reviews to {', '.join(MODE_PATHS)}"})
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._send(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return
        length = int(length_text)
        if length > MAX_REVIEW_BYTES:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body larger than {MAX_REVIEW_BYTES} bytes"})
            return
        if not self.server.bodies.acquire(length, self.server.request_seconds):
            self.close_connection = True
            self.server.service.log_connection_error(f"busy: a body of {length} bytes found no room in time")
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many large reviews at once; retry"})
            return
        try:
            data = self.rfile.read(length)
            if len(data) < length:  # the client stopped, or its deadline cut it off
                self.close_connection = True
                return
            self.server.set_deadline(self.connection, None)
            status, body = answer(self.server.service, data, mode)
            del data
        finally:
            self.server.bodies.release(length)
        self._send(status, body)

    def do_GET(self) -> None:
        """Liveness and readiness."""
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "alive"})
        elif path == "/readyz":
            ready = not self.server.draining.is_set()
            self._send(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "no such path"})

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: every review already logs its decisions."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.draining.is_set() or self.close_connection:
            # Draining: the client reconnects elsewhere. Refused unread: the rest of the body is not read.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
