"""Every answer of the server, read by an independent HTTP/1.1 implementation (h11).

h11 plays the client that sent the request: it parses the bytes the server sent
until the server closed, and objects to anything RFC 9112 does not allow (a bad
status line, a body where none may be, bytes after the message, a length that does
not match). A test that reads an answer through here has checked it round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    """Names in lower case, as h11 gives them."""
    body: bytes

    @property
    def status_line(self) -> str:
        return f"HTTP/1.1 {self.status} {self.reason}"


def parse_answer(raw: bytes, request: bytes = b"GET ") -> Answer:
    """``raw``, everything the server sent before closing, as one complete answer.

    ``request`` is (the start of) what was sent: a HEAD's answer has no body.
    AssertionError when h11 finds the answer incomplete or invalid.
    """
    method = "HEAD" if request.startswith(b"HEAD ") else "GET"
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")  # the server closes after each answer
    events = []
    try:
        while not isinstance(event := conn.next_event(), h11.ConnectionClosed):
            assert event is not h11.NEED_DATA, f"incomplete answer: {raw[:200]!r}"
            events.append(event)
    except h11.RemoteProtocolError as error:
        raise AssertionError(f"h11 rejects the answer ({error}): {raw[:200]!r}") from None
    response, *data, end = events
    assert isinstance(response, h11.Response) and isinstance(end, h11.EndOfMessage)
    assert all(isinstance(chunk, h11.Data) for chunk in data)
    assert response.http_version == b"1.1"
    return Answer(
        status=response.status_code,
        reason=response.reason.decode(),
        headers={name.decode(): value.decode() for name, value in response.headers},
        body=b"".join(bytes(chunk.data) for chunk in data if isinstance(chunk, h11.Data)),
    )
