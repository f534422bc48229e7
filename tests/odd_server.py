"""A fork-per-connection HTTP server with the habits of servers not written here, for the tests.

Each child answers ``Hello, World!`` and exits; the parent never reaps it (a leak, one
zombie per request) unless ``--reap``. A fork that fails (EAGAIN at a pids cgroup's limit)
is survived: the connection is closed unanswered. Flags, each a habit that made the
harness say something false:

- ``--ignore-term``: SIGTERM is ignored (uwsgi reloads on it, an Apache at its limit hangs).
- ``--daemonize``: the launcher double-forks and exits 0; the daemon serves (nginx's
  ``daemon on``). ``--no-listen``: the daemon never opens the port.
- ``--helpers N``: N helper processes run for ``--helper-seconds`` (2) from before the port
  opens, and are reaped by a thread.
- ``--linger S``: each child stays alive S seconds after its answer (a pool that grows).
- ``--leave-running``: a double-forked ``sleep`` that holds no socket and outlives the
  server.

Run: ``python tests/odd_server.py PORT [flags]``.
"""

import argparse
import os
import signal
import socket
import subprocess
import threading
import time

ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nHello, World!\n"


def daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)


def leave_running() -> None:
    """A process nobody will wait for: its parent exits at once."""
    if os.fork() == 0:
        os.setsid()
        subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
        os._exit(0)


def start_helpers(count: int, seconds: float) -> None:
    helpers = [subprocess.Popen(["sleep", str(seconds)]) for _ in range(count)]
    threading.Thread(target=lambda: [h.wait() for h in helpers], daemon=True).start()


def reap(_signum: int, _frame: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(listener: socket.socket, linger: float) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except InterruptedError:
            continue
        try:
            pid = os.fork()
        except BlockingIOError:  # at the pids limit: this request goes unanswered
            client.close()
            continue
        if pid == 0:
            listener.close()
            client.recv(4096)
            client.sendall(ANSWER)
            client.close()
            time.sleep(linger)
            os._exit(0)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    for flag in ("--ignore-term", "--daemonize", "--no-listen", "--leave-running", "--reap"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--helpers", type=int, default=0)
    parser.add_argument("--helper-seconds", type=float, default=2.0)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.daemonize:
        daemonize()
    if args.leave_running:
        leave_running()
    if args.no_listen:
        time.sleep(300)
    start_helpers(args.helpers, args.helper_seconds)
    if args.reap or args.linger:
        signal.signal(signal.SIGCHLD, reap)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    print(f"listening on {args.port}", flush=True)
    serve(listener, args.linger)


if __name__ == "__main__":
    main()
