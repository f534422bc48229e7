"""A fork-per-connection server in the tutorial's style, with the tutorial's defects.

Its answer starts with a blank line, uses bare LF and has no Content-Length, so an
HTTP client rejects it; only ``--protocol raw`` measures it. ``--no-reaper`` leaves
every child a zombie; otherwise the tutorial's SIGCHLD handler loops waitpid.
Run: ``python tests/tutorial_server.py PORT [--no-reaper]``.
"""

import os
import signal
import socket
import sys

ANSWER = b"""
HTTP/1.1 200 OK

Hello, World!
"""


def grim_reaper(_signum, _frame):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except OSError:
            return
        if pid == 0:
            return


def serve_forever(port: int, reap: bool) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    print(f"Serving HTTP on port {port} ...", flush=True)
    if reap:
        signal.signal(signal.SIGCHLD, grim_reaper)
    while True:
        try:
            client, _address = listener.accept()
        except InterruptedError:
            continue
        if os.fork() == 0:
            listener.close()
            client.recv(1024)
            client.sendall(ANSWER)
            client.close()
            os._exit(0)
        client.close()


if __name__ == "__main__":
    serve_forever(int(sys.argv[1]), reap="--no-reaper" not in sys.argv[2:])
