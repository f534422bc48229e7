"""Just enough HTTP/1.1 for the seed's service: parse one request head, build one answer.

Pure functions over bytes, so every rule about bad input is testable without a
socket. The service is the tutorial's ``tool.py`` turned into a web service:
``GET /Zhuibing%20Dan`` answers ``Hello, Zhuibing Dan!``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

MAX_HEAD_BYTES = 8 * 1024
"""A request head larger than this is refused with 431 (what most servers allow)."""

MAX_NAME_CHARS = 200
"""The greeting echoes the name; capping it keeps every answer small."""

ALLOWED_METHODS = ("GET", "HEAD")

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/(\d)\.(\d)")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str


class BadRequest(Exception):
    """The head cannot be served; ``status`` is the answer to send instead."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def head_end(buffer: bytes) -> int:
    """Index just past the blank line ending the head, or -1 if it has not arrived.

    Bare LF line ends are accepted too (``printf 'GET / HTTP/1.0\\n\\n' | nc``).
    """
    for terminator in (b"\r\n\r\n", b"\n\n"):
        index = buffer.find(terminator)
        if index >= 0:
            return index + len(terminator)
    return -1


def parse_head(head: bytes) -> Request:
    """Parse a complete request head; raise BadRequest with the status to answer."""
    request_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, major = match.group(1).decode("ascii"), match.group(2), match.group(3)
    if major != b"1":
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    if not target.startswith(b"/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "target must be an absolute path")
    if method not in ALLOWED_METHODS:
        raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"method {method} not allowed")
    return Request(method=method, target=target.decode("ascii", "replace"))


def name_from_target(target: str) -> str:
    """The greeting's name: the path, percent-decoded and made safe to echo.

    Invalid UTF-8 becomes U+FFFD, control characters (CR and LF among them) are
    dropped so no client can inject a header or a line, and the length is capped.
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path[1:], encoding="utf-8", errors="replace")
    clean = "".join(ch for ch in decoded if unicodedata.category(ch) != "Cc")
    return clean.strip()[:MAX_NAME_CHARS] or "World"


def greeting(name: str) -> bytes:
    return f"Hello, {name}!\n".encode()


def response(status: HTTPStatus, body: bytes, *, head_only: bool = False) -> bytes:
    """A complete HTTP/1.1 answer; the connection always closes after it."""
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        lines.append("Allow: " + ", ".join(ALLOWED_METHODS))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + body


def error_response(status: HTTPStatus) -> bytes:
    return response(status, f"{status.value} {status.phrase}\n".encode())


def answer(head: bytes) -> bytes:
    """The bytes to send back for one complete request head."""
    try:
        request = parse_head(head)
    except BadRequest as error:
        return error_response(error.status)
    body = greeting(name_from_target(request.target))
    return response(HTTPStatus.OK, body, head_only=request.method == "HEAD")


SERVICE_UNAVAILABLE = error_response(HTTPStatus.SERVICE_UNAVAILABLE)
"""Sent by the parent itself when it cannot fork or has no descriptor left."""
