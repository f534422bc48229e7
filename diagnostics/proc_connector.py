"""The kernel's process-events connector: every fork, exec and exit on the machine, with
the kernel's own timestamps (linux/cn_proc.h, drivers/connector/cn_proc.c).

A NETLINK_CONNECTOR socket bound to the CN_IDX_PROC group receives one datagram per
event once it has sent PROC_CN_MCAST_LISTEN. What the kernel allows varies:

- before Linux 6.6, binding and listening need CAP_NET_ADMIN (root); since 6.6 any
  user may listen;
- a listener outside the initial user and PID namespaces is ignored without a word
  (events are reported in the initial namespaces' PIDs), so the listen is confirmed
  by the kernel's acknowledgement, which such a listener never gets;
- events come for the whole machine: the connector cannot filter by process tree.

Nothing is lost silently: a full receive buffer makes recv() fail with ENOBUFS (an
"overflow", counted), and the kernel numbers the events it sends per CPU, so the
gaps in those numbers count the events this socket missed (:attr:`Connector.lost`: a
lower bound, as a CPU's numbers can be compared only from its first event read on). The events
are not filtered by type (the filter of 6.6+ would hide the gaps): exec events
come along, and name a child's new command.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import secrets
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
SO_RCVBUFFORCE = 33
"""Like SO_RCVBUF, but past net.core.rmem_max: needs CAP_NET_ADMIN."""
NLMSG_DONE = 3

NONE, FORK, EXEC, EXIT = 0x00000000, 0x00000001, 0x00000002, 0x80000000
"""The event types the recorder uses (proc_event.what); NONE is the kernel's ack."""

RECEIVE_BUFFER = 64 * 2**20
"""What the recorder asks for: a few seconds of a whole busy machine's events
(a queued event takes about a kilobyte) for when the recorder's thread falls behind."""
ACK_TIMEOUT_S = 1.0
"""The kernel acknowledges a listen before send() returns; this only bounds the wait
for an acknowledgement that will never come (a listener in another namespace)."""
BATCH = 4096
"""Events read at most in one go, so reaps (pidfds) are not starved under a flood."""
SLOTS = 256
"""Datagrams one recvmmsg(2) call takes at most: one event each."""

# nlmsghdr (16 bytes), cn_msg (20), proc_event: what, cpu, timestamp_ns, then the
# event's data, up to six 32-bit fields (the exit event's, since Linux 5.19).
_REQUEST = struct.Struct("=IHHII IIIIHH I")
_EVENT = struct.Struct("=I12x 8x I 8x I I Q iiiiii")
_EVENT_SIZE = _EVENT.size
_DATA_OFFSET = 52
_STRIDE = 128
"""Bytes of the read buffer given to each datagram (an event takes 76)."""
_SLOT = struct.Struct(_EVENT.format + f"{_STRIDE - _EVENT_SIZE}x")
"""An event and the rest of its slot: the slots filled are unpacked in one C loop."""


class ConnectorUnavailable(Exception):
    """The connector cannot be used here; ``str()`` says why in one line."""


Event = tuple[int, int, int, int, int, int]
"""One event as :meth:`Connector.read_batch` gives it: (what, timestamp_ns, pid, tgid,
parent_tgid, exit_status). For FORK, ``pid``/``tgid`` are the child's and ``parent_tgid``
its parent's; for EXIT, the task that exited, its parent at the exit (0 where the kernel
does not say) and its raw wait status; for EXEC, the task that ran exec. The timestamp
is CLOCK_MONOTONIC, as the kernel took it when it sent the event. A plain tuple, not a
named one: the recorder unpacks every event of the machine, and a named tuple's
constructor would cost a Python call each."""


class Connector:
    """A subscribed connector socket; :meth:`open` makes one or says why it cannot."""

    def __init__(self, sock: socket.socket, buffer_bytes: int) -> None:
        self._sock = sock
        self.buffer_bytes = buffer_bytes
        """The receive buffer the kernel granted (it reports twice what it accounts)."""
        self.overflows = 0
        self.gaps = 0
        """Events missing between two numbers of one CPU."""
        self.read = 0
        self._next_seq: dict[int, int] = {}
        self._buffer = bytearray(SLOTS * _STRIDE)
        self._view = memoryview(self._buffer)
        self._receive, self._slots = _receiver(sock, self._buffer)

    @classmethod
    def open(cls, buffer_bytes: int = RECEIVE_BUFFER) -> Connector:
        """Bind, take the largest buffer allowed, listen and wait for the kernel's ack."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as error:
            raise ConnectorUnavailable(f"no process-events connector: {error.strerror}") from None
        try:
            granted = _take_buffer(sock, buffer_bytes)
            try:
                sock.bind((0, 1 << (CN_IDX_PROC - 1)))
            except PermissionError:
                raise ConnectorUnavailable(
                    "binding the process-events connector needs root or CAP_NET_ADMIN"
                ) from None
            _listen(sock, PROC_CN_MCAST_LISTEN)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(sock, granted)

    @property
    def lost(self) -> int:
        """Events dropped, at least: the gaps, and one per overflow at the least (an
        overflow may have dropped events of a CPU not heard from before)."""
        return max(self.gaps, self.overflows)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(self) -> list[Event]:
        """The events waiting, in the order the kernel queued them (at most :data:`BATCH`).

        Overflows and sequence gaps are counted as they are met (:attr:`overflows`,
        :attr:`gaps`); acknowledgements are left out.
        """
        events: list[Event] = []
        append, next_seq = events.append, self._next_seq
        slots_of, view, receive = _SLOT.iter_unpack, self._view, self._receive
        slots = self._slots
        while len(events) < BATCH:
            try:
                count = receive()
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                self.overflows += 1
                continue
            if not count:
                break
            for length, seq, what, cpu, ts, a, b, c, d, _e, f in slots_of(view[: count * _STRIDE]):
                if length < _EVENT_SIZE:
                    continue  # not a proc event (nothing else is sent to this group)
                expected = next_seq.get(cpu)
                if expected is not None and seq != expected:
                    self.gaps += (seq - expected) % 2**32
                next_seq[cpu] = (seq + 1) % 2**32
                if what == FORK:
                    append((what, ts, c, d, b, 0))
                elif what == EXIT:  # the kernel zeroes the parent where it does not give it
                    append((what, ts, a, b, f, c))
                elif what == EXEC:
                    append((what, ts, a, b, 0, 0))
            if count < slots:
                break  # all there was: no call to be told so (EAGAIN)
        self.read += len(events)
        return events

    def close(self) -> None:
        """Stop listening (so the kernel stops sending when no one else listens) and close."""
        if self._sock.fileno() < 0:
            return
        try:
            _send(self._sock, PROC_CN_MCAST_IGNORE, secrets.randbits(31))
        except OSError:
            pass
        self._sock.close()


class _Message(ctypes.Structure):
    """struct msghdr."""

    _fields_ = [
        ("name", ctypes.c_void_p),
        ("name_length", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iov_length", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("control_length", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MessageHeader(ctypes.Structure):
    """struct mmsghdr: a struct msghdr (its padding included), then the length received."""

    _fields_ = [("message", _Message), ("length", ctypes.c_uint)]


class _IoVector(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def _receiver(sock: socket.socket, buffer: bytearray) -> tuple[Callable[[], int], int]:
    """A function that reads the datagrams waiting into ``buffer``, one per _STRIDE bytes
    from its start, and returns how many (0: none waiting; raises OSError, ENOBUFS on an
    overflow); and how many it reads at most in one call.

    recvmmsg(2) takes every datagram waiting (up to SLOTS) in one system call, where
    recv() takes one: the connector sends one datagram per event, and the recorder reads
    all of the machine's. Python has no recvmmsg, so it is called through ctypes;
    where the C library lacks it, one recv() a call stands in.
    """
    recvmmsg = getattr(ctypes.CDLL(None, use_errno=True), "recvmmsg", None)
    if recvmmsg is None:
        return _OneAtATime(sock, buffer).read, 1
    return _Batches(recvmmsg, sock, buffer).read, SLOTS


class _Batches:
    """recvmmsg(2) into the slots of one buffer; the vectors and headers the kernel
    writes through live as long as this object."""

    def __init__(self, recvmmsg: Any, sock: socket.socket, buffer: bytearray) -> None:
        recvmmsg.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p,
        ]  # fmt: skip
        recvmmsg.restype = ctypes.c_int
        base = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
        self._vectors = (_IoVector * SLOTS)()
        for i, vector in enumerate(self._vectors):
            vector.base, vector.length = base + i * _STRIDE, _STRIDE
        self._headers = (_MessageHeader * SLOTS)()
        for header, vector in zip(self._headers, self._vectors, strict=True):
            header.message.iov, header.message.iov_length = ctypes.addressof(vector), 1
        self._call = functools.partial(
            recvmmsg, sock.fileno(), ctypes.addressof(self._headers), SLOTS, socket.MSG_DONTWAIT
        )

    def read(self) -> int:
        count: int = self._call(None)
        if count < 0:
            error = ctypes.get_errno()
            if error in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            raise OSError(error, os.strerror(error))
        return count


class _OneAtATime:
    def __init__(self, sock: socket.socket, buffer: bytearray) -> None:
        self._slot, self._recv_into = memoryview(buffer)[:_STRIDE], sock.recv_into

    def read(self) -> int:
        try:
            self._recv_into(self._slot)
        except BlockingIOError:
            return 0
        return 1


def _take_buffer(sock: socket.socket, wanted: int) -> int:
    """Force the buffer past rmem_max where allowed, else take what rmem_max allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def _send(sock: socket.socket, op: int, ack: int) -> None:
    cn_length = 4
    message = _REQUEST.pack(
        _REQUEST.size, NLMSG_DONE, 0, 0, os.getpid(),
        CN_IDX_PROC, CN_VAL_PROC, 0, ack, cn_length, 0, op,
    )  # fmt: skip
    sock.send(message)


def _listen(sock: socket.socket, op: int) -> None:
    """Send the listen and wait for its acknowledgement (the kernel echoes ack + 1)."""
    ack = secrets.randbits(31)
    try:
        _send(sock, op, ack)
    except ConnectionRefusedError:
        raise ConnectorUnavailable(
            "no process-events connector in this network namespace"
        ) from None
    except OSError as error:
        raise ConnectorUnavailable(
            f"the process-events connector refused: {error.strerror}"
        ) from None
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    buffer = bytearray(256)
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0 and poller.poll(left * 1000):
        size = sock.recv_into(buffer)
        if size < _EVENT_SIZE:
            continue
        what, echoed = _EVENT.unpack_from(buffer)[2], struct.unpack_from("=I", buffer, 28)[0]
        if what == NONE and echoed == ack + 1:
            err = struct.unpack_from("=I", buffer, _DATA_OFFSET)[0]
            if err:
                raise ConnectorUnavailable(
                    f"the process-events connector refused to listen: {os.strerror(err)}"
                    " (it needs CAP_NET_ADMIN before Linux 6.6)"
                )
            return
    raise ConnectorUnavailable(
        "the kernel ignored the process-events subscription: it answers only listeners"
        " in the initial user and PID namespaces"
    )
