"""The HTTP rules of the server, on bytes alone (no sockets)."""

from __future__ import annotations

from http import HTTPStatus

import pytest

import server.protocol as protocol
from server.protocol import (
    MAX_NAME_CHARS,
    REASONS,
    BadRequest,
    answer,
    head_end,
    name_from_target,
    parse_head,
    percent_decode,
)
from tests.http_check import Answer, parse_answer


def answered(head: bytes) -> Answer:
    """The answer to ``head``, as h11 reads it."""
    raw, _unread = answer(head)
    return parse_answer(raw, head)


def test_get_root_greets_the_world() -> None:
    greeting = answered(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert greeting.status_line == "HTTP/1.1 200 OK"
    assert greeting.body == b"Hello, World!\n"
    assert greeting.headers == {
        "content-type": "text/plain; charset=utf-8",
        "content-length": str(len(greeting.body)),
        "connection": "close",
    }


def test_the_path_is_the_name_percent_decoded() -> None:
    assert answered(b"GET /Zhuibing%20Dan HTTP/1.0\r\n\r\n").body == b"Hello, Zhuibing Dan!\n"


def test_head_has_the_headers_of_get_and_no_body() -> None:
    get, _ = answer(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = answer(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert get.startswith(head) and head.endswith(b"\r\n\r\n")
    assert parse_answer(head, b"HEAD ").headers == parse_answer(get).headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405_with_allow(method: str) -> None:
    refusal = answered(f"{method} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert refusal.status_line == "HTTP/1.1 405 Method Not Allowed"
    assert refusal.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "head",
    [
        b"\r\n\r\n",
        b"hello\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET example.com HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x1bb HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"GET / FTP/1.0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
)
def test_malformed_request_lines_get_400(head: bytes) -> None:
    assert answered(head).status_line == "HTTP/1.1 400 Bad Request"


@pytest.mark.parametrize(
    "fields",
    [
        b"",  # no Host
        b"Host: a\r\nHost: a\r\n",
        b"Host: a\r\nhOST: b\r\n",
        b"Host: a\r\nno colon here\r\n",
        b"Host : a\r\n",  # whitespace before the colon
        b"Host: a\r\nX-A: 1\r\n  folded\r\n",  # obsolete line folding
        b": empty name\r\nHost: a\r\n",
    ],
)
def test_field_lines_and_host_are_checked(fields: bytes) -> None:
    """RFC 9112 §3.2 and §5: one Host in HTTP/1.1, and every field line is name: value."""
    for end in (b"\r\n", b"\n"):
        head = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
        assert answered(head.replace(b"\r\n", end)).status_line == "HTTP/1.1 400 Bad Request"


def test_http_1_0_may_leave_host_out_but_not_send_two() -> None:
    assert answered(b"GET /Ada HTTP/1.0\r\n\r\n").body == b"Hello, Ada!\n"
    two = b"GET /Ada HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"
    assert answered(two).status_line == "HTTP/1.1 400 Bad Request"


def test_host_is_found_in_any_case_among_other_fields() -> None:
    head = b"GET /Ada HTTP/1.1\r\nUser-Agent: t\r\nhost: a:1\r\nAccept: */*\r\n\r\n"
    assert answered(head).body == b"Hello, Ada!\n"


@pytest.mark.parametrize(
    ("target", "name"),
    [
        (b"http://127.0.0.1:8888/Ada", b"Ada"),
        (b"HTTP://example.com/Zhuibing%20Dan?x=1", b"Zhuibing Dan"),
        (b"https://example.com", b"World"),
        (b"http://example.com?q=1", b"World"),
    ],
)
def test_the_absolute_form_is_served(target: bytes, name: bytes) -> None:
    """RFC 9112 §3.2.2: a server must accept a target in absolute form."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n"
    assert answered(head).body == b"Hello, " + name + b"!\n"


@pytest.mark.parametrize(
    ("start", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
        (b"GET /\r\n", 400),  # HTTP/0.9
        (b"GET / HTTP/1.1 x\r\n", 400),
        (b"SSH-2.0-OpenSSH_9.2\r\n", 400),
        (b"GET / HTTP/2.0\r\n", 505),
        (b"GET / FTP", 400),
        (b"GET /a\x00", 400),
        (b"G(T", 400),
        (b" GET", 400),
        (b"GET / HTTP/1.1\r\nHost", 0),
        (b"GET / HTTP/1.1\r", 0),
        (b"GET / HT", 0),
        (b"GET /", 0),
        (b"GE", 0),
    ],
)
def test_a_start_that_can_never_be_http_1_is_refused_at_once(start: bytes, status: int) -> None:
    assert protocol.hopeless_start(start) == status


def test_other_http_versions_get_505() -> None:
    with pytest.raises(BadRequest) as raised:
        parse_head(b"GET / HTTP/2.0\r\n\r\n")
    assert raised.value.status == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED


def test_crlf_in_the_name_cannot_inject_a_header() -> None:
    raw, _ = answer(b"GET /a%0d%0aSet-Cookie:%20x=1%0d%0a%0d%0aowned HTTP/1.1\r\nHost: x\r\n\r\n")
    greeting = parse_answer(raw)
    assert greeting.status_line == "HTTP/1.1 200 OK"
    assert "set-cookie" not in greeting.headers
    assert greeting.body == b"Hello, aSet-Cookie: x=1owned!\n"
    assert raw.count(b"\r\n\r\n") == 1


def test_invalid_utf8_is_replaced_and_controls_dropped() -> None:
    assert name_from_target(b"/%ff%fe") == "\ufffd\ufffd"
    assert name_from_target(b"/a%00b%1bc%7fd") == "abcd"


def test_query_and_fragment_are_not_part_of_the_name() -> None:
    assert name_from_target(b"/Dan?x=1#frag") == "Dan"


def test_the_name_is_capped() -> None:
    assert len(name_from_target(b"/" + b"a" * 10_000)) == MAX_NAME_CHARS


def test_empty_name_is_the_world() -> None:
    assert name_from_target(b"/") == "World"
    assert name_from_target(b"/%0d%0a") == "World"


def test_head_end_accepts_crlf_and_bare_lf() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody") == 24
    assert head_end(b"GET / HTTP/1.0\n\n") == 16
    assert head_end(b"GET / HTTP/1.1\r\n") == -1


def test_raw_utf8_in_the_target_is_decoded_too() -> None:
    assert name_from_target("/Zhuìbīng".encode()) == "Zhuìbīng"


@pytest.mark.parametrize("target", [b"/a\tb", b"/a\x0bb", b"/a\x0cb"])
def test_whitespace_inside_the_target_is_malformed(target: bytes) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_head(b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert raised.value.status == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("version", [b"HTTP/1.10", b"HTTP/x.1", b"HTTP/1,1", b"HTTP/1."])
def test_malformed_versions_get_400(version: bytes) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_head(b"GET / " + version + b"\r\n\r\n")
    assert raised.value.status == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"plain",
        b"%20",
        b"a%2",
        b"%",
        b"%%41",
        b"%zz%41",
        b"%4",
        b"%e4%b8%ad",
        b"%C3%A9x",
        b"x%2G",
    ],
)
def test_percent_decoding_agrees_with_urllib(raw: bytes) -> None:
    from urllib.parse import unquote_to_bytes

    assert percent_decode(raw) == unquote_to_bytes(raw)


RENAMED_BY_RFC_9110 = {414: "URI Too Long"}
"""Python before 3.13 still says "Request-URI Too Long" (RFC 7231's phrase)."""


def test_reason_phrases_are_the_standard_ones() -> None:
    standard = {status: HTTPStatus(status).phrase for status in REASONS}
    assert {**standard, **RENAMED_BY_RFC_9110} == REASONS


def _request_heads() -> list[bytes]:
    """Every combination of a few methods, targets, versions and fields, ordinary and odd."""
    methods = [b"GET", b"HEAD", b"POST", b"get", b"G\x00T", b""]
    targets = [
        *(b"/", b"/Dan", b"/Zhuibing%20Dan", b"/%ff", b"/%0d%0a", b"/?q=1", b"/Dan#top"),
        *(b"/a\tb", b"/a?\tb", b"/a\x0bb", b"/\x7f", "/Zhuìbīng".encode(), b"/%2", b"/x\x85"),
        *(b"/" + b"a" * 300, b"/~user/a.b-c_d!", b"http://x/", b"", b"*"),
    ]
    versions = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1.10", b"HTTP/x.1", b""]
    separators = [b" ", b"  ", b"\t"]
    return [
        method + separator + target + b" " + version + end
        for method in methods
        for separator in separators
        for target in targets
        for version in versions
        for end in HEAD_ENDS
    ]


HEAD_ENDS = (
    b"\r\nHost: x\r\n\r\n",
    b"\n\n",
    b"\r\n\r\n",
    b"\r\nUser-Agent: t\r\nhost: x:80\r\nAccept: */*\r\n\r\n",
    b"\r\nHost: x\r\nHost: x\r\n\r\n",
    b"\r\nHost: x\r\nbroken\r\n\r\n",
    b"\r\nHost: x\nbroken\r\n\r\n",
    b"\r\nHost : x\r\n\r\n",
    b"\r\nHost: x\r\n folded\r\n\r\n",
    b"\r\nHost: a b\r\n\r\n",
    b"\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
    b"\r\nHost: x\r\ncontent-length: 0\r\n\r\n",
    b"\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
)


@pytest.mark.slow  # every one of 26,880 request heads both ways: about 4 s of CPU
def test_the_quick_path_answers_as_the_full_rules_do(monkeypatch: pytest.MonkeyPatch) -> None:
    heads = _request_heads()
    by_the_rules = []
    full_rules = protocol.answer_by_the_rules

    def by_the_rules_counted(head: bytes) -> tuple[bytes, bool]:
        by_the_rules.append(head)
        return full_rules(head)

    monkeypatch.setattr(protocol, "answer_by_the_rules", by_the_rules_counted)
    answers = {head: answer(head) for head in heads}
    monkeypatch.undo()
    quick = [head for head in heads if head not in by_the_rules]
    assert len(quick) >= 40, "the corpus should reach the quick path"
    assert [head for head in quick if answers[head] != full_rules(head)] == []
    for (raw, _unread), head in {reply: head for head, reply in answers.items()}.items():
        parse_answer(raw, head)  # every distinct answer of the corpus, read by h11


# -- RFC 9110 / 9112: the target's length, Host, the body's framing, OPTIONS * ---------------


@pytest.mark.parametrize(
    ("start", "status"),
    [
        (b"GET /" + b"a" * 9000, protocol.URI_TOO_LONG),  # the request line alone is too long
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n", protocol.URI_TOO_LONG),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, protocol.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (b"A" * 9000, protocol.BAD_REQUEST),  # no request line at all
    ],
)
def test_a_head_too_large_is_414_for_the_target_and_431_for_the_fields(
    start: bytes, status: int
) -> None:
    assert protocol.too_large(start) == status


@pytest.mark.parametrize(
    "value",
    [b"", b"a", b"a:80", b"a:", b"127.0.0.1:8888", b"[::1]", b"[::1]:8080", b"x.y-z_~", b"e%41x"],
)
def test_valid_host_values(value: bytes) -> None:
    assert protocol.host_ok(value)
    assert answered(b"GET /Ada HTTP/1.1\r\nHost: " + value + b"\r\n\r\n").body == b"Hello, Ada!\n"


@pytest.mark.parametrize(
    "value",
    [
        b"a b",
        b"a:b:c",
        b"a/b",
        b"a:8x",
        b"[::1",
        b"[]",
        b"[::1]x",
        b"[::1]:z",
        b"a@b",
        b"%zz",
        b"a%4",
    ],
)
def test_invalid_host_values_get_400(value: bytes) -> None:
    """RFC 9110 §7.2: a Host field with an invalid value is a 400, like a missing one."""
    assert not protocol.host_ok(value)
    assert answered(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n").status == 400


@pytest.mark.parametrize(
    ("fields", "status", "unread"),
    [
        (b"Content-Length: 0\r\n", 200, False),
        (b"Content-Length: 000\r\n", 200, False),
        (b"Content-Length: 5\r\n", 200, True),
        (b"Content-Length: 5, 5\r\n", 200, True),  # one value, repeated (RFC 9112 §6.3)
        (b"Content-Length: 5\r\ncontent-length: 5\r\n", 200, True),
        (b"Content-Length: abc\r\n", 400, True),
        (b"Content-Length: -1\r\n", 400, True),
        (b"Content-Length: +5\r\n", 400, True),
        (b"Content-Length:\r\n", 400, True),
        (b"Content-Length: 5, 6\r\n", 400, True),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, True),
        (b"Content-Length: " + b"9" * 5000 + b"\r\n", 200, True),  # past int()'s digit limit
        (b"Transfer-Encoding: chunked\r\n", 200, True),
        (b"Transfer-Encoding: CHUNKED\r\n", 200, True),
        (b"Transfer-Encoding: gzip\r\n", 400, True),  # the final coding is not chunked
        (b"Transfer-Encoding: chunked, gzip\r\n", 400, True),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", 400, True),
        (b"Transfer-Encoding: chunked, chunked\r\n", 400, True),
        (b"Transfer-Encoding:\r\n", 400, True),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501, True),  # a coding not implemented
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, True),
    ],
)
@pytest.mark.parametrize("target", [b"/Ada", b"/%41da"])  # the quick path and the full rules
def test_the_body_framing_is_checked_and_an_unread_body_is_flagged(
    fields: bytes, status: int, unread: bool, target: bytes
) -> None:
    """RFC 9112 §6: a request whose body's length is not certain gets 400 (501 for a
    coding not implemented); one with a body gets its answer and a lingering close."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    raw, flagged = answer(head)
    assert (parse_answer(raw).status, flagged) == (status, unread)


def test_options_asterisk_is_405_with_allow_and_other_methods_may_not_use_it() -> None:
    """RFC 9112 §3.2.4: the asterisk form is OPTIONS's, for the server as a whole."""
    options = answered(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (options.status, options.headers["allow"]) == (405, "GET, HEAD")
    assert answered(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").status == 400


@pytest.mark.parametrize(
    "head",
    [
        b"HEAD / HTTP/1.1\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"HEAD * HTTP/1.1\r\n\r\n",
    ],
)
def test_an_error_answer_to_head_has_no_body(head: bytes) -> None:
    """RFC 9110 §9.3.2: h11 reading it as the answer to a HEAD finds nothing after the head."""
    raw, _ = answer(head)
    refusal = parse_answer(raw, head)
    assert refusal.status == 400 and refusal.body == b""
    assert raw.endswith(b"\r\n\r\n") and int(refusal.headers["content-length"]) > 0


def test_only_errors_and_bodies_are_flagged_unread() -> None:
    assert answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[1] is False
    assert answer(b"GET /%41 HTTP/1.1\r\nHost: x\r\n\r\n")[1] is False
    assert answer(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")[1] is True
