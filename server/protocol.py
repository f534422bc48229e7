"""Just enough HTTP/1.1 for the seed's service: parse one request head, build one answer.

Pure functions over bytes, so every rule about bad input is testable without a
socket. The service is the tutorial's ``tool.py`` turned into a web service:
``GET /Zhuibing%20Dan`` answers ``Hello, Zhuibing Dan!``.

Everything that does not depend on the request (status lines, headers, error
answers) is built once at import, in the parent: a forked child then only
reads those bytes, and every object a child does not touch is a page it does
not copy.
"""

from __future__ import annotations

from http import HTTPStatus

MAX_HEAD_BYTES = 8 * 1024
"""A request head larger than this is refused with 431 (what most servers allow)."""

MAX_NAME_CHARS = 200
"""The greeting echoes the name; capping it keeps every answer small."""

ALLOWED_METHODS = ("GET", "HEAD")

_TOKEN_CHARACTERS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_HEX_DIGITS = b"0123456789abcdefABCDEF"

_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])
"""Unicode category Cc (C0, DEL, C1): removed from names, CR and LF among them."""


class BadRequest(Exception):
    """The head cannot be served; ``status`` is the answer to send instead."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def head_end(buffer: bytes) -> int:
    """Index just past the blank line ending the head, or -1 if it has not arrived.

    Bare LF line ends are accepted too (``printf 'GET / HTTP/1.0\\n\\n' | nc``).
    """
    index = buffer.find(b"\r\n\r\n")
    if index >= 0:
        return index + 4
    index = buffer.find(b"\n\n")
    return index + 2 if index >= 0 else -1


def parse_head(head: bytes) -> tuple[str, bytes]:
    """(method, target) of a complete request head; BadRequest with the status to answer.

    Plain bytes methods rather than a regular expression: this runs in every
    forked child, and a match object and the regex engine's state are pages the
    child would copy.
    """
    request_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _is_token(parts[0]) or len(parts[1].split()) != 1:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if not (len(version) == 8 and version.startswith(b"HTTP/") and version[6:7] == b"."):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    if not (version[5:6].isdigit() and version[7:8].isdigit()):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    if version[5:6] != b"1":
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    if not target.startswith(b"/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "target must be an absolute path")
    verb = method.decode("ascii")
    if verb not in ALLOWED_METHODS:
        raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"method {verb} not allowed")
    return verb, target


def _is_token(word: bytes) -> bool:
    """RFC 9110 token: the characters a method name may use."""
    return bool(word) and not word.translate(None, _TOKEN_CHARACTERS)


def name_from_target(target: bytes) -> str:
    """The greeting's name: the path, percent-decoded and made safe to echo.

    Invalid UTF-8 becomes U+FFFD, control characters (CR and LF among them) are
    dropped so no client can inject a header or a line, and the length is capped.
    """
    path = target.split(b"?", 1)[0].split(b"#", 1)[0][1:]
    decoded = percent_decode(path).decode("utf-8", "replace")
    return decoded.translate(_CONTROL_CHARACTERS).strip()[:MAX_NAME_CHARS] or "World"


def percent_decode(raw: bytes) -> bytes:
    """%XX escapes to bytes; a malformed escape stays as it is, as urllib's unquote does.

    Eight lines rather than urllib.parse, whose import (named tuples and all)
    adds about 600 KB to the forking parent.
    """
    first, *escaped = raw.split(b"%")
    parts = [first]
    for chunk in escaped:
        digits = chunk[:2]
        if len(digits) == 2 and not digits.translate(None, _HEX_DIGITS):
            parts += (bytes.fromhex(digits.decode("ascii")), chunk[2:])
        else:
            parts += (b"%", chunk)
    return b"".join(parts)


def greeting(name: str) -> bytes:
    return f"Hello, {name}!\n".encode()


def _head_template(status: HTTPStatus) -> bytes:
    """The head of an answer with ``status``, with ``%d`` where the body's length goes."""
    allow = "Allow: " + ", ".join(ALLOWED_METHODS) + "\r\n"
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: %d\r\n"
        "Connection: close\r\n"
        f"{allow if status is HTTPStatus.METHOD_NOT_ALLOWED else ''}"
        "\r\n"
    ).encode("ascii")


_OK_HEAD = _head_template(HTTPStatus.OK)


def response(body: bytes, *, head_only: bool = False, head: bytes = _OK_HEAD) -> bytes:
    """A complete HTTP/1.1 answer; the connection always closes after it."""
    lines = head % len(body)
    return lines if head_only else lines + body


def _error_response(status: HTTPStatus) -> bytes:
    return response(f"{status.value} {status.phrase}\n".encode(), head=_head_template(status))


ERROR_RESPONSES: dict[HTTPStatus, bytes] = {
    status: _error_response(status)
    for status in (
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.METHOD_NOT_ALLOWED,
        HTTPStatus.REQUEST_TIMEOUT,
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
    )
}
"""Every error this server sends, ready-made."""

SERVICE_UNAVAILABLE = ERROR_RESPONSES[HTTPStatus.SERVICE_UNAVAILABLE]
"""Sent by the parent itself when it cannot fork or has no descriptor left."""


def answer(head: bytes) -> bytes:
    """The bytes to send back for one complete request head."""
    try:
        method, target = parse_head(head)
    except BadRequest as error:
        return ERROR_RESPONSES[error.status]
    return response(greeting(name_from_target(target)), head_only=method == "HEAD")
