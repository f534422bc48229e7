"""The server over real sockets: answers, bad input, slow clients, fork failure, shutdown."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.http_check import parse_answer
from tests.server_helpers import (
    ROOT,
    ServerProcess,
    read_response,
    read_to_eof,
    reap_adopted,
    wait_until,
)


def status_of(raw: bytes, request: bytes = b"GET ") -> str:
    """The status line of an answer that h11 reads as valid."""
    return parse_answer(raw, request).status_line


def _one_per_module(*args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(args)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One default server for the tests that send a request and read its answer.

    Each connection is served by a child of its own, so these tests cannot disturb
    one another; a server of their own would cost each a start and a kill.
    """
    yield from _one_per_module()


@pytest.fixture(scope="module")
def patient_server() -> Iterator[ServerProcess]:
    """Shared like `server`, with a --timeout past the client's 10 s: a refusal that
    waited for the timeout would fail."""
    yield from _one_per_module("--timeout", "60")


def test_banner_names_address_pid_and_strategy(start_server) -> None:
    server = start_server("--reaper", "wakeup")
    assert server.banner.startswith("Serving HTTP on http://127.0.0.1:")
    assert server.banner.endswith(f"(pid {server.proc.pid}, reaper wakeup)")


def test_answers_the_seed_requests(server: ServerProcess) -> None:
    assert server.get("/").endswith(b"\r\n\r\nHello, World!\n")
    assert server.get("/Zhuibing%20Dan").endswith(b"\r\n\r\nHello, Zhuibing Dan!\n")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"hello there\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/3.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"),
        (
            b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, "HTTP/1.1 431 Request Header Fields Too Large"),
    ],
)
def test_bad_input_gets_its_status(server: ServerProcess, raw: bytes, status: str) -> None:
    assert status_of(server.request(raw), raw) == status
    assert server.get("/").startswith(b"HTTP/1.1 200 OK")  # the parent is unharmed


TLS_CLIENT_HELLO_START = bytes.fromhex("16030100f4010000f00303") + bytes(32)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        # Neither ever ends its head with a blank line: refused at once, not at --timeout.
        (TLS_CLIENT_HELLO_START, "HTTP/1.1 400 Bad Request"),
        (b"GET /\r\n", "HTTP/1.1 400 Bad Request"),  # HTTP/0.9
    ],
)
def test_rfc_9112_refusals(patient_server: ServerProcess, raw: bytes, status: str) -> None:
    assert status_of(patient_server.request(raw), raw) == status


@pytest.mark.parametrize(
    "raw",
    [
        b"GET http://127.0.0.1:8888/Ada HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n",
        b"\r\nGET /Ada HTTP/1.1\r\nHost: a\r\n\r\n",  # an empty line before the request
        b"\r\n\r\nGET /Ada HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
)
def test_rfc_9112_acceptances(server: ServerProcess, raw: bytes) -> None:
    assert server.request(raw).endswith(b"\r\n\r\nHello, Ada!\n")


def test_an_empty_line_sent_apart_from_the_request_is_skipped(start_server) -> None:
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"\r\n")
        wait_until(lambda: len(server.live_children()) == 1, what="the child to start")
        conn.sendall(b"GET /Ada HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_to_eof(conn).endswith(b"Hello, Ada!\n")


def send_while_reading(port: int, raw: bytes) -> bytes:
    """Send ``raw`` from a thread while reading the answer: a large request outgrows the
    socket buffers, and the server answers before it has read it all."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        sender = threading.Thread(target=conn.sendall, args=(raw,))
        sender.start()
        answer = read_to_eof(conn)
        sender.join(timeout=10)
    return answer


@pytest.mark.parametrize("size", [20_000, 200_000])
@pytest.mark.parametrize(
    ("template", "status"),
    [
        (b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 414 URI Too Long"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
    ],
)
def test_an_oversized_request_is_answered_not_reset(
    server: ServerProcess, size: int, template: bytes, status: str
) -> None:
    """The child stops reading at 8 KiB; its lingering close keeps the rest from
    turning into a TCP reset that would destroy the answer before the client reads it.
    A long target is 414, long header fields 431 (RFC 9110 §15.5.15, RFC 6585 §5)."""
    assert status_of(send_while_reading(server.port, template % (b"a" * size))) == status


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 400 Bad Request",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nzz",
            "HTTP/1.1 400 Bad Request",
        ),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (
            b"GET /Ada HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK",
        ),
    ],
)
def test_rfc_9110_and_9112_answers_over_the_wire(
    server: ServerProcess, raw: bytes, status: str
) -> None:
    assert status_of(server.request(raw), raw) == status


@pytest.mark.parametrize("body_size", [10, 4_000_000])
def test_a_get_with_a_body_is_answered_not_reset(server: ServerProcess, body_size: int) -> None:
    """The greeting never reads the body; the lingering close after it keeps the unread
    body from turning into a reset (http.client failed 5 times in 5 on 4 MB)."""
    for _ in range(5):
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            client.request("GET", "/Ada", body=b"x" * body_size)
            response = client.getresponse()
            assert (response.status, response.read()) == (200, b"Hello, Ada!\n")
        finally:
            client.close()
    raw = b"GET /Ada HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body_size
    assert parse_answer(send_while_reading(server.port, raw + b"x" * body_size)).status == 200


def test_two_requests_in_one_write_get_the_first_answer_whole(server: ServerProcess) -> None:
    pipelined = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    assert parse_answer(send_while_reading(server.port, pipelined)).body == b"Hello, a!\n"


@pytest.mark.slow  # waits out a server timeout or a shutdown: about a second
def test_the_lingering_close_is_bounded(start_server) -> None:
    """A client that reads the error and keeps its side open is let go within a second."""
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert status_of(read_to_eof(conn)) == "HTTP/1.1 400 Bad Request"
        wait_until(lambda: not server.children(), timeout=10, what="the lingering child to end")


def test_crlf_injection_stays_in_the_body(server: ServerProcess) -> None:
    raw = server.get("/x%0D%0ALocation:%20http://evil%0D%0A")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Location" not in head
    assert body == b"Hello, xLocation: http://evil!\n"


def test_half_a_head_then_hang_up_gets_400(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost")
        conn.shutdown(socket.SHUT_WR)
        assert status_of(read_to_eof(conn)) == "HTTP/1.1 400 Bad Request"


@pytest.mark.slow  # waits out a server timeout or a shutdown: about a second
def test_a_silent_client_does_not_block_others_and_is_dropped(start_server) -> None:
    server = start_server("--timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        assert server.get("/other").endswith(b"Hello, other!\n")
        # Its child hangs up after --timeout without an answer (EOF, not our 10 s).
        assert read_to_eof(silent) == b""


@pytest.mark.slow  # waits out a server timeout or a shutdown: about a second
def test_a_client_that_stalls_mid_head_gets_408(start_server) -> None:
    server = start_server("--timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\n")
        assert status_of(read_to_eof(conn)) == "HTTP/1.1 408 Request Timeout"


@pytest.mark.slow  # waits out a server timeout or a shutdown: about a second
def test_sigterm_waits_for_in_flight_children_and_reports(start_server) -> None:
    server = start_server("--work-ms", "1500")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: len(server.live_children()) == 1, what="the child to start")
        child = server.live_children()[0]
        server.proc.send_signal(signal.SIGTERM)
        assert read_to_eof(conn).endswith(b"Hello, late!\n")
    out, _ = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0
    counters = json.loads(out.strip().splitlines()[-1])
    assert counters["accepted"] == counters["forked"] == counters["reaped_at_shutdown"] == 1
    assert counters["reaped"] == 0  # while serving
    assert not psutil.pid_exists(child)


@pytest.mark.slow  # waits out a server timeout or a shutdown: about a second
def test_ctrl_c_to_the_process_group_lets_every_request_in_flight_finish(start_server) -> None:
    """A terminal's Ctrl-C is SIGINT to the whole foreground group, children included."""
    server = start_server("--work-ms", "1500", "--grace", "30")
    conns = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(5)]
    try:
        for n, conn in enumerate(conns):
            conn.sendall(f"GET /r{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(lambda: len(server.live_children()) == 5, what="five children in flight")
        os.killpg(server.pid, signal.SIGINT)  # the server leads its own group
        answers = [read_to_eof(conn) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert [a.endswith(f"Hello, r{n}!\n".encode()) for n, a in enumerate(answers)] == [True] * 5
    out, _ = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0
    counters = json.loads(out.strip().splitlines()[-1])
    assert counters["forked"] == counters["reaped_at_shutdown"] == 5


REFERENCE_CTRL_C = (
    "waits up to `--grace` seconds for children in\nflight (reaping them, unless the strategy"
    " is `none`: then they end as zombies"
)


@pytest.mark.slow  # waits out a second of work in each child
def test_ctrl_c_under_none_waits_for_the_children_in_flight_and_leaves_them_zombies(
    start_server,
) -> None:
    """What docs/reference.md says Ctrl-C does, under the strategy that never reaps."""
    assert REFERENCE_CTRL_C in (ROOT / "docs" / "reference.md").read_text()
    server = start_server("--reaper", "none", "--work-ms", "1000", "--grace", "30")
    conns = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
    children: list[int] = []
    try:
        for conn in conns:
            conn.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: len(server.live_children()) == 3, what="three children in flight")
        children = server.live_children()
        os.killpg(server.pid, signal.SIGINT)
        server.proc.wait(timeout=30)
        # The parent has exited: its children came to pytest (the subreaper), and each
        # had ended before, unreaped: none is still at work.
        states = {psutil.Process(pid).status() for pid in children}
        answers = [parse_answer(read_to_eof(conn)).body for conn in conns]
    finally:
        for conn in conns:
            conn.close()
        reap_adopted(children)
    assert states == {psutil.STATUS_ZOMBIE}
    assert answers == [b"Hello, late!\n"] * 3
    assert server.proc.stdout is not None
    counters = json.loads(server.proc.stdout.read().strip().splitlines()[-1])
    assert counters["forked"] == 3
    assert counters["reaped"] == counters["reaped_at_shutdown"] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_children_past_the_grace_period_are_ended_and_reaped(start_server, signum) -> None:
    server = start_server("--work-ms", "60000", "--grace", "0.05")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: len(server.live_children()) == 1, what="the child to start")
        child = server.live_children()[0]
        counters = server.stop(signum)
    assert counters["forked"] == counters["reaped_at_shutdown"] == 1
    assert not psutil.pid_exists(child)


def test_stats_file_holds_the_same_counters(start_server, tmp_path: Path) -> None:
    stats = tmp_path / "server.json"
    server = start_server("--stats-file", str(stats))
    server.get("/")
    counters = server.stop()
    assert counters["accepted"] == counters["forked"] == 1
    assert stats.read_text().strip() == server.stdout_tail.strip().splitlines()[-1]


def test_an_unwritable_stats_file_still_prints_the_counters_and_warns(start_server) -> None:
    server = start_server("--stats-file", "/proc/no-such-dir/server.json")
    server.get("/")
    server.proc.send_signal(signal.SIGTERM)
    out, err = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 1
    assert json.loads(out.strip().splitlines()[-1])["forked"] == 1
    [warning] = err.strip().splitlines()
    assert warning.startswith("python -m server: warning: cannot write --stats-file /proc/")


def run_server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m server ARGS`` expected to exit at once (a bad flag, a busy port)."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_port_in_use_is_one_line_and_exit_1(server: ServerProcess) -> None:
    result = run_server_cli("--port", str(server.port))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "Address already in use" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["--port", "70000"], ["--reaper", "sometimes"], ["--work-ms", "-1"], ["--timeout", "0"]],
)
def test_bad_flags_exit_2_without_traceback(args: list[str]) -> None:
    result = run_server_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr.splitlines()[-1]


# -- fork failure: a pids cgroup makes fork() fail with EAGAIN, as in a full container --------


def _pids_cgroup_root() -> Path | None:
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        writable = (root / "cgroup.procs").exists() and os.access(root, os.W_OK)
        if writable and (root.name == "pids" or "pids" in _read(root / "cgroup.subtree_control")):
            return root
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    root = _pids_cgroup_root()
    if root is None:
        pytest.skip("no writable pids cgroup here")
    group = root / f"reaperlab-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        yield group
    finally:
        wait_until(lambda: not (group / "cgroup.procs").read_text().strip(), what="empty cgroup")
        group.rmdir()


def test_fork_failure_answers_503_and_keeps_serving(start_server, pids_cgroup: Path) -> None:
    (pids_cgroup / "pids.max").write_text("1")
    enter = f'echo $$ > {pids_cgroup / "cgroup.procs"} && exec "$@"'
    server = start_server(prefix=["sh", "-c", enter, "sh"])
    assert status_of(server.get("/")) == "HTTP/1.1 503 Service Unavailable"
    (pids_cgroup / "pids.max").write_text("max")
    assert server.get("/").endswith(b"Hello, World!\n")
    counters = server.stop()
    assert counters["accepted"] == 2
    assert counters["fork_failures"] == counters["rejected"] == 1
    assert counters["forked"] == counters["reaped"] + counters["reaped_at_shutdown"] == 1


def test_leaked_descriptors_grow_one_per_request(start_server) -> None:
    server = start_server("--leak-client-fd")
    before = server.open_fds()
    for done in range(1, 6):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(conn).endswith(b"Hello, World!\n")

        def leaked(n: int = done) -> bool:
            return server.open_fds() == before + n

        wait_until(leaked, what=f"{done} leaked fds")
    assert server.open_fds() == before + 5


def test_without_the_leak_descriptors_stay_flat(start_server) -> None:
    server = start_server()
    before = server.open_fds()
    for _ in range(5):
        server.get("/")
    wait_until(lambda: not server.children(), what="children to be reaped")
    wait_until(lambda: server.open_fds() == before, timeout=5, what="descriptors back to start")


def test_out_of_descriptors_the_parent_answers_503_and_keeps_serving(start_server) -> None:
    """With --leak-client-fd and a low descriptor limit, accept() fails with EMFILE.

    The parent frees its spare descriptor to accept and refuse each client,
    instead of spinning on a listening socket it cannot accept from.
    """
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    server = start_server("--leak-client-fd", prefix=["prlimit", "--nofile=32:32"])
    statuses = []
    for _ in range(40):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses.append(status_of(read_response(conn)))
    assert statuses[0] == "HTTP/1.1 200 OK"
    assert statuses[-1] == "HTTP/1.1 503 Service Unavailable"
    counters = server.stop()
    assert counters["accepted"] == 40
    assert counters["rejected"] == statuses.count("HTTP/1.1 503 Service Unavailable") > 0
