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

MAX_HEAD_BYTES = 8 * 1024
"""A request head larger than this is refused with 431 (what most servers allow)."""

MAX_NAME_CHARS = 200
"""The greeting echoes the name; capping it keeps every answer small."""

ALLOWED_METHODS = ("GET", "HEAD")
_ALLOWED = tuple(method.encode("ascii") for method in ALLOWED_METHODS)

_TOKEN_CHARACTERS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_HEX_DIGITS = b"0123456789abcdefABCDEF"

_PLAIN_TARGET_BYTES = bytes(range(0x21, 0x7F)).replace(b"%", b"")
"""Printable ASCII but ``%``: a target made only of these needs no decoding or cleaning."""

_CONTROL_BYTES = bytes(range(0x20)) + b"\x7f"
"""ASCII controls: never part of a request line (RFC 9112 §3)."""

_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])
"""Unicode category Cc (C0, DEL, C1): removed from names, CR and LF among them."""


OK = 200
BAD_REQUEST = 400
METHOD_NOT_ALLOWED = 405
REQUEST_TIMEOUT = 408
REQUEST_HEADER_FIELDS_TOO_LARGE = 431
SERVICE_UNAVAILABLE = 503
HTTP_VERSION_NOT_SUPPORTED = 505

REASONS = {
    OK: "OK",
    BAD_REQUEST: "Bad Request",
    METHOD_NOT_ALLOWED: "Method Not Allowed",
    REQUEST_TIMEOUT: "Request Timeout",
    REQUEST_HEADER_FIELDS_TOO_LARGE: "Request Header Fields Too Large",
    SERVICE_UNAVAILABLE: "Service Unavailable",
    HTTP_VERSION_NOT_SUPPORTED: "HTTP Version Not Supported",
}
"""The statuses this server sends, with RFC 9110's reason phrases (a test holds
them to http.HTTPStatus). Not HTTPStatus itself: importing http builds a
60-member enum, and the enum machinery is the largest part of what the
forking parent would otherwise carry (see server.speed)."""


class BadRequest(Exception):
    """The head cannot be served; ``status`` is the answer to send instead."""

    def __init__(self, status: int, detail: str) -> None:
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


def parse_head(head: bytes) -> tuple[bytes, bytes]:
    """(method, origin-form path) of a complete head; BadRequest with the status to answer.

    Plain bytes methods rather than a regular expression: this runs in every
    forked child, and a match object and the regex engine's state are pages the
    child would copy.
    """
    request_line, *fields = [line.rstrip(b"\r") for line in head.rstrip(b"\r\n").split(b"\n")]
    method, target, version = parse_request_line(request_line)
    if not fields_ok(fields, version):
        raise BadRequest(BAD_REQUEST, "malformed header field, or not exactly one Host")
    path = origin_path(target)
    if method not in _ALLOWED:
        raise BadRequest(METHOD_NOT_ALLOWED, f"method {method!r} not allowed")
    return method, path


def parse_request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(method, target, version) of ``method SP target SP HTTP/1.x``, or BadRequest.

    A control character in the target (NUL, TAB, DEL...) is a 400 rather than a
    character to clean up: RFC 9112 leaves no room for it, and a server that
    reads one as something else is a request-smuggling hazard.
    """
    parts = line.split(b" ")
    if len(parts) != 3 or not _is_token(parts[0]) or not parts[1]:
        raise BadRequest(BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if len(target.translate(None, _CONTROL_BYTES)) != len(target):
        raise BadRequest(BAD_REQUEST, "control character in the target")
    if not (len(version) == 8 and version.startswith(b"HTTP/") and version[6:7] == b"."):
        raise BadRequest(BAD_REQUEST, "malformed HTTP version")
    if not (version[5:6].isdigit() and version[7:8].isdigit()):
        raise BadRequest(BAD_REQUEST, "malformed HTTP version")
    if version[5:6] != b"1":
        raise BadRequest(HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    return method, target, version


def fields_ok(lines: list[bytes], version: bytes) -> bool:
    """Every field line is ``name: value`` with a token name, and Host comes exactly once.

    RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without Host, and
    to any request with two; HTTP/1.0 may leave it out. §5.1: no whitespace
    before the colon (a token cannot hold any), which also refuses obsolete line
    folding (a line starting with a space). Both paths of ``answer`` use this
    one loop: on ordinary heads it is a few C calls per line.
    """
    hosts = 0
    for line in lines:
        colon = line.find(b":")
        if colon <= 0 or line[:colon].translate(None, _TOKEN_CHARACTERS):
            return False
        if colon == 4 and line[:4].lower() == b"host":
            hosts += 1
    return hosts == 1 or (hosts == 0 and version == b"HTTP/1.0")


def origin_path(target: bytes) -> bytes:
    """The path of an origin-form (``/Ada``) or absolute-form (``http://host/Ada``) target.

    RFC 9112 §3.2.2: a server must accept the absolute form (proxies send it,
    and HTTP/2 gateways). Its authority must be there and hold no userinfo;
    an empty path is ``/``.
    """
    if target[:1] == b"/":
        return target
    scheme, separator, rest = target.partition(b"://")
    if separator and scheme.lower() in (b"http", b"https"):
        end = len(rest)
        for mark in (b"/", b"?", b"#"):
            index = rest.find(mark)
            if 0 <= index < end:
                end = index
        authority, path = rest[:end], rest[end:]
        if authority and b"@" not in authority:
            return path if path[:1] == b"/" else b"/" + path
    raise BadRequest(BAD_REQUEST, "target must be an absolute path or an http(s) URI")


def hopeless_start(buffer: bytes) -> int:
    """For a head that has not all arrived: the status to answer at once, or 0 to wait.

    A first line that cannot begin an HTTP/1.x request (a TLS ClientHello, an
    HTTP/0.9 ``GET /``, an SSH banner) will never be followed by a blank line the
    way HTTP's is, so waiting for one only turns a 400 into a 408 seconds later.
    """
    line, newline, _rest = buffer.partition(b"\n")
    if newline:
        try:
            parse_request_line(line.rstrip(b"\r"))
        except BadRequest as error:
            return error.status
        return 0
    if line.endswith(b"\r"):
        line = line[:-1]
    parts = line.split(b" ")
    method = parts[0]
    if len(parts) > 3 or method.translate(None, _TOKEN_CHARACTERS):
        return BAD_REQUEST
    if len(parts) > 1 and not method:
        return BAD_REQUEST
    if len(line.translate(None, _CONTROL_BYTES)) != len(line):
        return BAD_REQUEST
    if len(parts) == 3 and (not parts[1] or not b"HTTP/".startswith(parts[2][:5])):
        return BAD_REQUEST
    return 0


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


def _head_template(status: int) -> bytes:
    """The head of an answer with ``status``, with ``%d`` where the body's length goes."""
    allow = "Allow: " + ", ".join(ALLOWED_METHODS) + "\r\n"
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: %d\r\n"
        "Connection: close\r\n"
        f"{allow if status == METHOD_NOT_ALLOWED else ''}"
        "\r\n"
    ).encode("ascii")


_GREETING_HEAD = _head_template(OK)
_GREETING = _GREETING_HEAD + b"Hello, %s!\n"
_GREETING_EXTRA_BYTES = len(b"Hello, !\n")


def _greet(name: bytes, method: bytes) -> bytes:
    """The 200 answer greeting ``name`` (UTF-8); HEAD gets the same head and no body."""
    length = len(name) + _GREETING_EXTRA_BYTES
    return _GREETING % (length, name) if method == b"GET" else _GREETING_HEAD % length


def _error_response(status: int) -> bytes:
    body = f"{status} {REASONS[status]}\n".encode("ascii")
    return _head_template(status) % len(body) + body


ERROR_RESPONSES: dict[int, bytes] = {
    status: _error_response(status) for status in REASONS if status != OK
}
"""Every error this server sends, ready-made."""

SERVICE_UNAVAILABLE_ANSWER = ERROR_RESPONSES[SERVICE_UNAVAILABLE]
"""Sent by the parent itself when it cannot fork or has no descriptor left."""


def answer(head: bytes) -> bytes:
    """The bytes to send back for one complete request head.

    Nearly every request is a plain ``GET /name HTTP/1.1`` with a few CRLF-ended
    fields, and the lines below answer it with few calls and few new objects:
    this runs in a forked child, where every object touched is a page copied
    (see server.speed). Anything else (escapes, non-ASCII, controls, bare LF
    line ends, the absolute form, errors) goes through parse_head and
    name_from_target, the full rules; a test holds both paths to the same
    answers.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) == 3:
        method, target, version = parts
        if (
            (method == b"GET" or method == b"HEAD")
            and (version == b"HTTP/1.1" or version == b"HTTP/1.0")
            and target[:1] == b"/"
            and not target.translate(None, _PLAIN_TARGET_BYTES)
            and head.count(b"\n") == len(lines) - 1
            and fields_ok(lines[1:-2], version)
        ):
            path = target.split(b"?", 1)[0].split(b"#", 1)[0]
            return _greet(path[1 : MAX_NAME_CHARS + 1] or b"World", method)
    return answer_by_the_rules(head)


_OK_STATUS_LINE = f"HTTP/1.1 {OK} ".encode("ascii")


def is_error(reply: bytes) -> bool:
    """True for any answer but a 200: the request may not have been read to its end."""
    return not reply.startswith(_OK_STATUS_LINE)


def answer_by_the_rules(head: bytes) -> bytes:
    """What ``answer`` returns, always by the full rules (its slow path)."""
    try:
        method, target = parse_head(head)
    except BadRequest as error:
        return ERROR_RESPONSES[error.status]
    return _greet(name_from_target(target).encode(), method)
