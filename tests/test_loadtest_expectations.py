"""What the clients request and accept, and how --server-cmd names its scenarios."""

from __future__ import annotations

import pytest

from loadtest.expectations import BODY_SHOWN, DEFAULT_MIX_NAME, Expectations, from_locust_options
from loadtest.scenarios import external, select
from reports.locust import failure_reason


def test_the_default_mix_checks_our_greeting_exactly() -> None:
    expect = Expectations()
    for _ in range(50):
        path, name, exact = expect.pick()
        assert name == DEFAULT_MIX_NAME and exact is not None and exact.startswith("Hello, ")
        assert expect.judge_http(200, exact, exact) is None
        assert expect.judge_http(200, "Hello!", exact) == "unexpected body 'Hello!'"
        assert expect.judge_http(404, exact, exact) == "status 404 (expected 200)"


def test_paths_status_and_substring_are_the_users_to_choose() -> None:
    expect = Expectations(paths=("/a", "/b"), status=204, body="ok")
    assert {expect.pick()[0] for _ in range(100)} == {"/a", "/b"}
    assert expect.pick()[2] is None  # no exact body for a path we did not write
    assert expect.judge_http(204, "all ok", None) is None
    assert expect.judge_http(204, "fine", None) == "body without 'ok'"
    assert expect.judge_http(200, "ok", None) == "status 200 (expected 204)"


def test_no_body_check_keeps_the_status_check() -> None:
    expect = Expectations(body_check=False)
    path, _name, exact = expect.pick()
    assert exact is None and path.startswith("/")
    assert expect.judge_http(200, "<html>listing</html>", exact) is None
    assert expect.judge_http(404, "", exact) is not None


def test_raw_answers_need_bytes_and_the_substring() -> None:
    assert Expectations().judge_raw(b"\nHTTP/1.1 200 OK\n\nHello, World!\n") is None
    assert Expectations().judge_raw(b"") == "connection closed with no answer"
    assert Expectations(body="Bye").judge_raw(b"Hello") == "answer without 'Bye'"


def test_the_option_round_trips() -> None:
    expect = Expectations(paths=("/x y",), status=301, body='"quoted"', body_check=False)
    assert Expectations.from_option(expect.to_option()) == expect
    assert Expectations.from_option("") == Expectations()


def test_locust_wrapped_reasons_read_as_written() -> None:
    assert failure_reason("CatchResponseError('status 404 (expected 200)')") == (
        "status 404 (expected 200)"
    )
    assert failure_reason("CatchResponseError(\"body without 'ok'\")") == "body without 'ok'"
    assert failure_reason("ConnectionResetError(104, 'reset')") == (
        "ConnectionResetError(104, 'reset')"
    )


def test_server_cmds_name_their_scenarios() -> None:
    chosen = external(["python3 a.py {port}", "after=python3 b.py {port}", "x {port}"])
    assert [s.name for s in chosen] == ["external", "after", "external-2"]
    assert chosen[1].server_cmd == "python3 b.py {port}" and chosen[1].strategy is None


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["a=x {port}", "a=y {port}"], "given twice"),
        (["no-reaper=x {port}"], "built-in"),
    ],
)
def test_bad_names_are_refused(specs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        external(specs)


def test_server_cmds_run_alone() -> None:
    with pytest.raises(ValueError, match="only the servers it names"):
        select(None, "none", False, ["x {port}"])


def test_locust_options_without_ours_mean_the_defaults() -> None:
    class Options:
        reaperlab_expect = Expectations(status=204).to_option()

    assert from_locust_options(object()) == Expectations()  # a plain locustfile's options
    assert from_locust_options(Options()) == Expectations(status=204)


def test_an_unexpected_body_is_shown_cut_short() -> None:
    body = "x" * (BODY_SHOWN + 50)
    reason = Expectations().judge_http(200, body, "Hello, World!\n")
    assert reason == f"unexpected body {'x' * BODY_SHOWN!r}"
