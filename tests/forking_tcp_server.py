"""The standard library's socketserver.ForkingTCPServer answering HTTP, for the tests.

It reaps on a timer: ``collect_children`` runs after each request and every 0.5 s
of the serve_forever poll, so its last zombies wait up to half a second after the
load, which a harness must not mistake for a leak.
Run: ``python tests/forking_tcp_server.py PORT``.
"""

import socketserver
import sys

BODY = b"Hello, World!\n"


class Hello(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the request line and headers
        self.wfile.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
        )


if __name__ == "__main__":
    socketserver.ForkingTCPServer.allow_reuse_address = True
    with socketserver.ForkingTCPServer(("127.0.0.1", int(sys.argv[1])), Hello) as server:
        server.serve_forever()
