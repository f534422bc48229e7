"""What the clients request and what counts as a success, shared by the harness and Locust.

The harness builds an :class:`Expectations` from its flags and hands it to Locust as one
JSON option; the built-in users (HTTP and raw) read it back and judge every answer with
the same functions. Pure Python, no Locust import, so the harness and the tests use it too.

A failure reason is a short, stable phrase ("status 404 (expected 200)"): Locust groups
failures by their text, and the report shows the most frequent ones.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import asdict, dataclass

from loadtest import defaults

NAMES = ["World", "Zhuibing Dan", "Ada", "Grace Hopper", "Linus", "Dennis", "Ken"]
"""The default mix: ``/`` (World) and ``/<name>``, which our server greets by name."""
DEFAULT_MIX_NAME = "/<name>"
BODY_SHOWN = 40
"""How much of an unexpected body a failure reason quotes."""


@dataclass(frozen=True, slots=True)
class Expectations:
    paths: tuple[str, ...] = ()
    """Paths to request, chosen at random; empty: the default ``/`` and ``/<name>`` mix."""
    status: int = defaults.EXPECT_STATUS.default
    body: str | None = None
    """A substring every answer must contain."""
    body_check: bool = True
    """For the default mix: the body must be exactly our server's greeting."""

    def to_option(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_option(cls, text: str | None) -> Expectations:
        """Read back :meth:`to_option`; the defaults when Locust was not given the option."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            paths=tuple(data["paths"]),
            status=int(data["status"]),
            body=data["body"],
            body_check=bool(data["body_check"]),
        )

    def pick(self) -> tuple[str, str, str | None]:
        """A request to make: (path, name Locust files it under, exact body expected or None)."""
        if self.paths:
            path = random.choice(self.paths)
            return path, path, None
        name = random.choice(NAMES)
        path = "/" if name == "World" else "/" + name.replace(" ", "%20")
        exact = f"Hello, {name}!\n" if self.body_check and self.body is None else None
        return path, DEFAULT_MIX_NAME, exact

    def judge_http(self, status: int, body: str, exact: str | None) -> str | None:
        """Why an HTTP answer is a failure, or None when it is a success."""
        if status != self.status:
            return f"status {status} (expected {self.status})"
        if exact is not None and body != exact:
            return f"unexpected body {body[:BODY_SHOWN]!r}"
        if self.body is not None and self.body not in body:
            return f"body without {self.body!r}"
        return None

    def judge_raw(self, answer: bytes) -> str | None:
        """Why a raw answer (all bytes until the server closed) is a failure, or None."""
        if not answer:
            return "connection closed with no answer"
        if self.body is not None and self.body.encode() not in answer:
            return f"answer without {self.body!r}"
        return None


def from_locust_options(options: object) -> Expectations:
    """What the harness passed to Locust (``--reaperlab-expect``), parsed once per process."""
    return _parsed(getattr(options, "reaperlab_expect", "") or "")


@functools.cache
def _parsed(option: str) -> Expectations:
    return Expectations.from_option(option)
