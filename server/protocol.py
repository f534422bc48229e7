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
"""A request head larger than this is refused (what most servers allow): 414 when its
request line alone is that long, 431 otherwise (see ``too_large``)."""

MAX_NAME_CHARS = 200
"""The greeting echoes the name; capping it keeps every answer small."""

ALLOWED_METHODS = ("GET", "HEAD")
_ALLOWED = tuple(method.encode("ascii") for method in ALLOWED_METHODS)

_ALPHANUMERIC = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_CHARACTERS = b"!#$%&'*+-.^_`|~" + _ALPHANUMERIC

_HEX_DIGITS = b"0123456789abcdefABCDEF"

_PLAIN_TARGET_BYTES = bytes(range(0x21, 0x7F)).replace(b"%", b"")
"""Printable ASCII but ``%``: a target made only of these needs no decoding or cleaning."""

_UNRESERVED_AND_SUB_DELIMS = b"-._~!$&'()*+,;=" + _ALPHANUMERIC
_REG_NAME_BYTES = _UNRESERVED_AND_SUB_DELIMS + b"%"
"""What a host name may hold (RFC 3986 §3.2.2 reg-name: unreserved, sub-delims, %XX)."""
_IP_LITERAL_BYTES = _REG_NAME_BYTES + b":"
"""What may stand between the brackets of an IP literal (IPv6, IPvFuture)."""

_OWS = b" \t"
"""Optional whitespace around a field value (RFC 9110 §5.6.3)."""
_PLAIN_HOST_FIELD_BYTES = _UNRESERVED_AND_SUB_DELIMS + b": "
"""What the value of an ordinary Host line holds: a name, a port, the space before them."""

_CONTROL_BYTES = bytes(range(0x20)) + b"\x7f"
"""ASCII controls: never part of a request line (RFC 9112 §3)."""

_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])
"""Unicode category Cc (C0, DEL, C1): removed from names, CR and LF among them."""


OK = 200
BAD_REQUEST = 400
METHOD_NOT_ALLOWED = 405
REQUEST_TIMEOUT = 408
URI_TOO_LONG = 414
REQUEST_HEADER_FIELDS_TOO_LARGE = 431
NOT_IMPLEMENTED = 501
SERVICE_UNAVAILABLE = 503
HTTP_VERSION_NOT_SUPPORTED = 505

REASONS = {
    OK: "OK",
    BAD_REQUEST: "Bad Request",
    METHOD_NOT_ALLOWED: "Method Not Allowed",
    REQUEST_TIMEOUT: "Request Timeout",
    URI_TOO_LONG: "URI Too Long",
    REQUEST_HEADER_FIELDS_TOO_LARGE: "Request Header Fields Too Large",
    NOT_IMPLEMENTED: "Not Implemented",
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


NO_BODY = 0
BODY_FOLLOWS = 1
"""What ``read_fields`` finds when the head is good: no body, or one that follows it
(which this service never reads: the child then closes by lingering)."""


def parse_head(head: bytes) -> tuple[bytes, bytes, int]:
    """(method, origin-form path, NO_BODY or BODY_FOLLOWS) of a complete head; BadRequest
    with the status to answer.

    Plain bytes methods rather than a regular expression: this runs in every
    forked child, and a match object and the regex engine's state are pages the
    child would copy. ``OPTIONS *`` (the asterisk form, RFC 9112 §3.2.4) is a
    valid request for a method this server does not serve: 405, like OPTIONS of
    any path; the asterisk with any other method is malformed.
    """
    request_line, *fields = [line.rstrip(b"\r") for line in head.rstrip(b"\r\n").split(b"\n")]
    method, target, version = parse_request_line(request_line)
    body = read_fields(fields, version)
    if body > BODY_FOLLOWS:
        raise BadRequest(body, "malformed header field, Host, or body framing")
    if target == b"*" and method == b"OPTIONS":
        raise BadRequest(METHOD_NOT_ALLOWED, "OPTIONS is not served, to * or any path")
    path = origin_path(target)
    if method not in _ALLOWED:
        raise BadRequest(METHOD_NOT_ALLOWED, f"method {method!r} not allowed")
    return method, path, body


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


def read_fields(lines: list[bytes], version: bytes) -> int:
    """NO_BODY or BODY_FOLLOWS for good field lines, else the error status to answer.

    RFC 9112 §5.1: every line is ``name: value`` with a token name, so no
    whitespace before the colon (which also refuses obsolete line folding).
    RFC 9110 §7.2 and RFC 9112 §3.2: Host exactly once (HTTP/1.0 may leave it
    out), and a valid one. RFC 9112 §6: the body's length must be certain:
    Content-Length a number (the same one if repeated), Transfer-Encoding ending
    in chunked, and not both. Both paths of ``answer`` use this one loop: on
    ordinary heads it is a few C calls per line.
    """
    hosts = 0
    lengths = codings = b""
    for line in lines:
        colon = line.find(b":")
        if colon <= 0 or line[:colon].translate(None, _TOKEN_CHARACTERS):
            return BAD_REQUEST
        if colon == 4:
            if line[:4].lower() == b"host":
                hosts += 1
                # The common "Host: name[:port]" is checked here, without a call; the
                # rest (IP literals, escapes, odd spacing, the invalid) by host_ok.
                value = line[5:]
                port = value.find(b":") + 1
                if (
                    value.translate(None, _PLAIN_HOST_FIELD_BYTES)
                    or value.find(b" ", 1) >= 0
                    or (port and not value[port:].isdigit())
                ) and not host_ok(value.strip(_OWS)):
                    return BAD_REQUEST
        elif colon == 14:
            if line[:14].lower() == b"content-length":
                lengths += b"," + line[15:]
        elif colon == 17 and line[:17].lower() == b"transfer-encoding":
            codings += b"," + line[18:]
    if hosts != 1 and (hosts or version != b"HTTP/1.0"):
        return BAD_REQUEST
    if codings:
        return BAD_REQUEST if lengths else _chunked_or_not(codings)
    return _by_length(lengths) if lengths else NO_BODY


def _by_length(lengths: bytes) -> int:
    """Content-Length's values (each after a comma): RFC 9110 §8.6 makes it 1*DIGIT; a
    list repeating one value is that value, different values are an error (RFC 9112 §6.3)."""
    values = {value.strip(_OWS) for value in lengths.split(b",")[1:]}
    if len(values) != 1:
        return BAD_REQUEST
    [value] = values
    if not value.isdigit():
        return BAD_REQUEST
    return BODY_FOLLOWS if value.lstrip(b"0") else NO_BODY


def _chunked_or_not(codings: bytes) -> int:
    """Transfer-Encoding's codings (each after a comma), RFC 9112 §6.1 and §6.3.

    Chunked must be the last one and come once, or the body's end cannot be
    found: 400. Chunked alone is a body this service can skip; any other coding
    is one it does not implement: 501.
    """
    names = [c.split(b";", 1)[0].strip(_OWS).lower() for c in codings.split(b",")[1:]]
    names = [name for name in names if name]  # empty list elements are allowed (§5.6.1)
    if not names or names[-1] != b"chunked" or b"chunked" in names[:-1]:
        return BAD_REQUEST
    return BODY_FOLLOWS if len(names) == 1 else NOT_IMPLEMENTED


def host_ok(value: bytes) -> bool:
    """Whether a Host value is ``uri-host [":" port]`` (RFC 9110 §7.2, RFC 3986 §3.2.2).

    Empty is valid (a target without an authority); ``a b``, ``a:b:c`` or ``a/b``
    are not.
    """
    if value[:1] == b"[":
        end = value.find(b"]")
        if end < 2 or value[1:end].translate(None, _IP_LITERAL_BYTES):
            return False
        host, port = b"", value[end + 1 :]
        if port and port[:1] != b":":
            return False
        port = port[1:]
    else:
        host, _colon, port = value.partition(b":")
        if host.translate(None, _REG_NAME_BYTES):
            return False
    if port and not port.isdigit():
        return False
    return b"%" not in host or all(
        not escape[:2].translate(None, _HEX_DIGITS) and len(escape) >= 2
        for escape in host.split(b"%")[1:]
    )


def too_large(buffer: bytes) -> int:
    """The status for a head longer than MAX_HEAD_BYTES: 414 when the request line alone is.

    RFC 9112 §3 asks servers to take request lines of 8,000 octets at least,
    and a longer one is made long by its target: 414 URI Too Long (RFC 9110
    §15.5.15). When the line fits, the field lines are too large: 431 (RFC
    6585 §5). A first line without even a space in it is no request line.
    """
    if buffer.find(b"\n", 0, MAX_HEAD_BYTES) >= 0:
        return REQUEST_HEADER_FIELDS_TOO_LARGE
    return URI_TOO_LONG if b" " in buffer[:MAX_HEAD_BYTES] else BAD_REQUEST


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

_ERROR_HEADS = {
    status: response[: head_end(response)] for status, response in ERROR_RESPONSES.items()
}


def error_answer(status: int, request: bytes) -> bytes:
    """The error answer for a request that starts with ``request``: no body for HEAD
    (RFC 9110 §9.3.2), whatever went wrong after the method."""
    return (_ERROR_HEADS if request.startswith(b"HEAD ") else ERROR_RESPONSES)[status]


SERVICE_UNAVAILABLE_ANSWER = ERROR_RESPONSES[SERVICE_UNAVAILABLE]
"""Sent by the parent itself when it cannot fork or has no descriptor left."""


def answer(head: bytes) -> tuple[bytes, bool]:
    """The bytes to send back for one complete request head, and whether input may
    be left unread after it (an error, or a request body): then the child closes by
    lingering (server.child.linger).

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
            and (body := read_fields(lines[1:-2], version)) <= BODY_FOLLOWS
        ):
            path = target.split(b"?", 1)[0].split(b"#", 1)[0]
            return _greet(path[1 : MAX_NAME_CHARS + 1] or b"World", method), body == BODY_FOLLOWS
    return answer_by_the_rules(head)


def answer_by_the_rules(head: bytes) -> tuple[bytes, bool]:
    """What ``answer`` returns, always by the full rules (its slow path)."""
    try:
        method, target, body = parse_head(head)
    except BadRequest as error:
        return error_answer(error.status, head), True
    return _greet(name_from_target(target).encode(), method), body == BODY_FOLLOWS
