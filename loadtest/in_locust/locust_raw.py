"""A raw TCP client for servers that do not speak valid HTTP (``--protocol raw``).

Locust's documented way to load something other than an HTTP client: a plain User
that does its own I/O on gevent sockets and fires ``events.request`` for each
attempt, so Locust counts, times and groups failures as it does for HTTP. Each
request connects, sends ``GET PATH HTTP/1.0`` and an empty line, and reads until
the server closes; it succeeds when bytes came back (and contain ``--expect-body``).
The tutorial's server, whose answer starts with a blank line and has no CRLF, is
measured this way.

Never imported by the harness or the tests (gevent patches the process it is in).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from gevent import socket
from locust import User, task
from locust.exception import CatchResponseError

from loadtest.expectations import from_locust_options

TIMEOUT = 10.0
CHUNK = 65536


class RawRequestUser(User):
    @task
    def request(self) -> None:
        expect = from_locust_options(self.environment.parsed_options)
        path, name, _exact = expect.pick()
        address = urlsplit(self.host)
        answer = bytearray()
        error: Exception | None = None
        started = time.perf_counter()
        try:
            with socket.create_connection(
                (address.hostname, address.port or 80), timeout=TIMEOUT
            ) as connection:
                connection.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                while chunk := connection.recv(CHUNK):
                    answer += chunk
        except OSError as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if error is None:
            reason = expect.judge_raw(bytes(answer))
            error = CatchResponseError(reason) if reason is not None else None
        self.environment.events.request.fire(
            request_type="RAW",
            name=name,
            response_time=elapsed_ms,
            response_length=len(answer),
            exception=error,
            context={},
        )
