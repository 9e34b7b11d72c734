"""The webhook's HTTPS server: stdlib `ThreadingHTTPServer` + `ssl`, thin over `answer`.

| request                               | answer                                                                |
|---------------------------------------|-----------------------------------------------------------------------|
| `POST /admit/enforce`, `/admit/warn`  | 200 AdmissionReview v1, 400 malformed review (query `?timeout=5s` ignored) |
| `GET /healthz`                        | 200 while the process serves                                          |
| `GET /readyz`                         | 200 when the ledger answered recently (else a probe read); 503 draining |

The serving certificate is read again when its files change (cert-manager renews it in place), and the TLS
handshake happens in the request's thread, so a slow client never holds up the others.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
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


def answer(service: AdmissionService, body: bytes, mode: Mode) -> tuple[int, dict[str, Any]]:
    """One review: (HTTP status, JSON body). A body that is not an AdmissionReview v1 request is a 400."""
    try:
        review = parse_review(body)
    except MalformedReviewError as error:
        service.log_rejected(str(error))
        return HTTPStatus.BAD_REQUEST, {"error": str(error)}
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


class AdmissionServer(ThreadingHTTPServer):
    """Answers reviews in a thread each; closing waits for the reviews in flight.

    The API server keeps connections open and reuses them, also to a pod that is stopping: while draining,
    every answer closes its connection (the next review connects to another replica), and `close_idle`
    ends the connections still waiting for a request, so stopping never waits for their idle timeout.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], service: AdmissionService, certificate: ServingCertificate) -> None:
        self.service = service
        self.certificate = certificate
        self.draining = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, AdmissionHandler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember (or forget) a connection being served."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

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

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

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
        status, body = answer(self.server.service, self.rfile.read(length), mode)
        self._send(status, body)

    def do_GET(self) -> None:
        """Liveness and readiness."""
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "alive"})
        elif path == "/readyz":
            ready = not self.server.draining.is_set() and self.server.service.ready()
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
        if self.server.draining.is_set():
            self.send_header("Connection", "close")  # sets close_connection: the client reconnects elsewhere
        self.end_headers()
        self.wfile.write(data)
