"""Descriptors a forked child inherited and should have closed: its parent's listening
socket, and the client sockets of other connections.

After ``fork()`` parent and child hold every descriptor alike, and the tutorial names
two duties: the parent closes its copy of the client socket, the child closes the
listening socket. Neglect either and nothing fails at once. A child that keeps the
listening socket keeps the port open after the parent has gone (a restart fails with
EADDRINUSE, and connections queued on it are never accepted); a parent that keeps
client sockets hands every one of them to each child it forks later, so children hold
the connections of their siblings' clients, and those clients never see the
connection close. No tool reports either; ``doctor`` does, from /proc alone:

- A socket is an inode: ``/proc/PID/fd/N`` links to ``socket:[INODE]``, and the TCP
  tables of the process's network namespace give each inode its state and address
  (diagnostics.sockets). The parent's listening sockets are its descriptors in
  LISTEN; its client sockets are connected ones on the port of one of them.
- Whether children holding the listening socket is a leak or a design depends on who
  accepts on it: the workers of a prefork pool (gunicorn, Apache) all hold it and
  accept on it; a fork-per-connection parent accepts and its children must not hold
  it. So each process is asked what it waits on: the system call it is blocked in
  (``/proc/PID/task/TID/syscall``), accept on the socket, or poll, select or epoll
  with it in the set (read from ``/proc/PID/mem``, or the epoll's fdinfo). It is a
  leak only when the parent was seen waiting on the socket and none of the children
  holding it was; children seen waiting on it are a pool; when nobody was seen (all
  busy, or not ours to read) the finding says it cannot tell.
- A fork-per-connection child serves one client socket. One that holds client
  sockets its parent or a sibling also holds got them with the fork.

Where an exec follows the fork (the child runs another program), the fix is not a
close in code that never sees the descriptor, but SOCK_CLOEXEC or ``close_fds``.
"""

from __future__ import annotations

import os
import platform
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from diagnostics.errors import AccessDenied, NoSuchProcess, os_call
from diagnostics.proctable import list_dir, read_proc_file, task_children
from diagnostics.sockets import TcpSocket, tables_of, tcp_sockets

Section = dict[str, Any]

FIX_LISTENER = "close the listening socket in the child right after fork"
FIX_CLIENT = "close the client socket in the parent right after fork"
FIX_EXEC = (
    "open the socket with SOCK_CLOEXEC (or spawn with close_fds=True), so the program the"
    " child execs does not inherit it"
)

TREE_LOOK = 16
"""How many processes of a tree :meth:`ListenerHolders.in_tree` looks at for a listener."""
LOOKS = 5
LOOK_GAP_S = 0.02
"""What a process waits on is seen only while it waits: a few looks, this far apart."""

_SOCKET_LINK = "socket:["
_POLLIN = 0x1  # POLLIN and EPOLLIN alike
_MAX_POLLED = 65536

# The system calls that wait on descriptors, by number, for the machines /proc is read on.
_ACCEPT, _POLL, _SELECT, _EPOLL = "accept", "poll", "select", "epoll"
_WAITING_CALLS = {
    "x86_64": {43: _ACCEPT, 288: _ACCEPT, 7: _POLL, 271: _POLL, 23: _SELECT, 270: _SELECT,
               232: _EPOLL, 281: _EPOLL, 441: _EPOLL},
    "aarch64": {202: _ACCEPT, 242: _ACCEPT, 73: _POLL, 72: _SELECT, 22: _EPOLL, 441: _EPOLL},
}  # fmt: skip
_CALLS = _WAITING_CALLS.get(platform.machine())


def socket_inodes(pid: int) -> dict[int, int]:
    """The socket descriptors of ``pid``: descriptor number -> socket inode.

    NoSuchProcess / AccessDenied when its descriptors cannot be listed; a
    descriptor closed while we read is left out.
    """
    inodes = {}
    for name in list_dir(f"/proc/{pid}/fd", pid):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith(_SOCKET_LINK):
            inodes[int(name)] = int(link[len(_SOCKET_LINK) : -1])
    return inodes


class ListenerHolders:
    """Counts the processes that hold one of a parent's listening sockets, cheaply enough
    to call once per sample (the sampler's ``listener_holders``, the harness's aftermath).

    The parent's listening sockets are found once, here; each count then reads one
    link per process and socket: the descriptor number the parent holds it under,
    which a forked child keeps. A child that moved the socket to another number
    (dup2, or an exec'd program handed it as fd 3) is not counted; ``examine``,
    which lists every descriptor, finds it. A process that cannot be read (gone, a
    zombie, not ours to read) counts as not holding one, and the parent itself is
    never counted. A parent that listens on nothing when this is made gives 0 ever
    after (:meth:`in_tree` gives None for it instead).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        inodes = socket_inodes(pid)
        tables = tcp_sockets(tables_of(pid)) if inodes else {}
        self.links = {
            fd: f"{_SOCKET_LINK}{inode}]"
            for fd, inode in inodes.items()
            if tables.get(inode, _NONE).listening
        }

    @classmethod
    def in_tree(cls, root: int, look: int = TREE_LOOK) -> ListenerHolders | None:
        """The listening sockets of ``root``, or of the first process below it that has
        some (the server under a shell that started it, or under an init), breadth first
        over at most ``look`` processes; None where none listens or may be read."""
        queue, seen = deque([root]), 0
        while queue and seen < look:
            pid = queue.popleft()
            seen += 1
            try:
                found = cls(pid)
                if found.links:
                    return found
                queue.extend(sorted(task_children(pid)))
            except (NoSuchProcess, AccessDenied):
                continue
        return None

    def count(self, processes: Iterable[int]) -> int:
        if not self.links:
            return 0
        return sum(self.holds(pid) for pid in processes if pid != self.pid)

    def holds(self, child: int) -> bool:
        for fd, link in self.links.items():
            try:
                if os.readlink(f"/proc/{child}/fd/{fd}") == link:
                    return True
            except OSError:
                continue
        return False


def waiting_on(pid: int) -> set[int] | None:
    """The descriptors some thread of ``pid`` is blocked waiting to read or accept on.

    Empty when no thread waits on a descriptor right now (running, asleep, in a
    read); None when the process may not be looked at this closely (ptrace
    rights) or the machine is not one whose system call numbers are known here.
    """
    if _CALLS is None:
        return None
    waited: set[int] = set()
    readable = False
    try:
        tids = list_dir(f"/proc/{pid}/task", pid)
    except (NoSuchProcess, AccessDenied):
        return None
    for tid in tids:
        try:
            fields = read_proc_file(f"/proc/{pid}/task/{tid}/syscall", pid).split()
        except (NoSuchProcess, AccessDenied):
            continue
        readable = True
        if len(fields) < 7 or fields[0] == b"running" or int(fields[0]) not in _CALLS:
            continue
        call, args = _CALLS[int(fields[0])], [int(arg, 16) for arg in fields[1:7]]
        try:
            waited |= _descriptors_waited(pid, call, args)
        except (OSError, NoSuchProcess, AccessDenied):
            continue  # the call returned meanwhile, or its memory is not ours to read
    return waited if readable else None


def _descriptors_waited(pid: int, call: str, args: list[int]) -> set[int]:
    if call == _ACCEPT:
        return {args[0]}
    if call == _EPOLL:
        return _epoll_set(pid, args[0])
    if call == _POLL:
        count = min(args[1], _MAX_POLLED)
        polled = struct.iter_unpack("=ihh", _read_memory(pid, args[0], 8 * count))
        return {fd for fd, events, _revents in polled if fd >= 0 and events & _POLLIN}
    nfds, readfds = min(args[0], _MAX_POLLED), args[1]
    if not readfds:
        return set()
    bits = int.from_bytes(_read_memory(pid, readfds, (nfds + 63) // 64 * 8), "little")
    return {fd for fd in range(nfds) if bits >> fd & 1}


def _read_memory(pid: int, address: int, size: int) -> bytes:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        return os.pread(fd, size, address)
    finally:
        os.close(fd)


def _epoll_set(pid: int, epfd: int) -> set[int]:
    """The descriptors an epoll instance watches for input (``tfd`` lines of its fdinfo)."""
    waited = set()
    for line in read_proc_file(f"/proc/{pid}/fdinfo/{epfd}", pid).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == b"tfd:" and int(fields[3], 16) & _POLLIN:
            waited.add(int(fields[1]))
    return waited


def _exe(pid: int) -> str | None:
    try:
        return os_call(pid, lambda: os.readlink(f"/proc/{pid}/exe"))
    except (NoSuchProcess, AccessDenied):
        return None


def examine(pid: int) -> Section:
    """What ``pid``'s children inherited and should not hold: the doctor's section.

    ``findings`` each name a problem and its fix in one line; ``notes`` say what was
    seen and is not a problem, or could not be told. NoSuchProcess / AccessDenied
    when the parent's own descriptors cannot be read.
    """
    table = tcp_sockets(tables_of(pid))
    parent = socket_inodes(pid)
    listeners = {
        fd: table[inode] for fd, inode in parent.items() if table.get(inode, _NONE).listening
    }
    held, unreadable = _children_sockets(pid)
    section: Section = {
        "children": len(held) + len(unreadable),
        "unreadable": unreadable,
        "listeners": [],
        "client_sockets": None,
        "findings": [],
        "notes": [],
    }
    if not listeners:
        return section
    exec_children = _exec_children(pid, held)
    _listener_part(pid, listeners, held, exec_children, section)
    _client_part(set(parent.values()), listeners, held, table, exec_children, section)
    return section


_NONE = TcpSocket(0, "", 0, "", 0)


def _children_sockets(pid: int) -> tuple[dict[int, set[int]], list[int]]:
    """({child: its socket inodes}, children whose descriptors could not be read)."""
    held: dict[int, set[int]] = {}
    unreadable = []
    for child in sorted(task_children(pid)):
        try:
            held[child] = set(socket_inodes(child).values())
        except NoSuchProcess:
            continue
        except AccessDenied:
            unreadable.append(child)
    return held, unreadable


def _exec_children(pid: int, held: dict[int, set[int]]) -> set[int]:
    """The children that run another program than the parent (an exec followed the fork)."""
    mine = _exe(pid)
    return {child for child in held if mine is not None and _exe(child) not in (None, mine)}


def _fix(close: str, holders: Iterable[int], exec_children: set[int]) -> str:
    holders = set(holders)
    if not holders & exec_children:
        return close
    if holders <= exec_children:
        return FIX_EXEC
    return f"{close}; in the children that exec another program, {FIX_EXEC}"


def _listener_part(
    pid: int,
    listeners: dict[int, TcpSocket],
    held: dict[int, set[int]],
    exec_children: set[int],
    section: Section,
) -> None:
    for fd, sock in sorted(listeners.items()):
        holders = [child for child, inodes in held.items() if sock.inode in inodes]
        parent_waits, accepting = _who_waits(pid, fd, holders) if holders else (None, [])
        section["listeners"].append(
            {
                "address": sock.address,
                "fd": fd,
                "inode": sock.inode,
                "queued": sock.rx_queue,
                "holders": holders,
                "accepting": accepting,
                "parent_waits": parent_waits,
            }
        )
        if not holders:
            continue
        some = f"{len(holders):,} of its {len(held):,} children hold its listening socket"
        some += f" {sock.address} (fd {fd})"
        fix = _fix(FIX_LISTENER, holders, exec_children)
        if accepting:
            section["notes"].append(
                f"{some}, and {len(accepting):,} of them were seen waiting on it: workers that"
                " accept on a shared socket, by design"
            )
        elif parent_waits:
            problem = (
                f"{some}, which only the parent accepts on: while any of them runs, the port"
                " stays open after the parent exits (a restart fails with EADDRINUSE, and"
                " connections queued on it are never accepted)"
            )
            section["findings"].append(_finding("listener", holders, problem, fix))
        else:
            problem = (
                f"{some}; neither the parent nor any of them was seen waiting on it, so who"
                " accepts is not known: if the parent forks one child per connection, the port"
                " outlives the parent while they run"
            )
            fix = (
                f"if each child serves one connection, {fix} (accepting workers hold it by design)"
            )
            section["findings"].append(_finding("listener-unclear", holders, problem, fix))


def _finding(kind: str, children: list[int], problem: str, fix: str) -> dict[str, Any]:
    return {"kind": kind, "children": children, "problem": problem, "fix": fix}


def _who_waits(pid: int, fd: int, holders: list[int]) -> tuple[bool | None, list[int]]:
    """(whether the parent was seen waiting on its descriptor ``fd``, the holders seen
    waiting on it), over a few looks; None where the parent could not be looked at."""
    parent_waits: bool | None = None
    accepting: set[int] = set()
    for look in range(LOOKS):
        if look:
            time.sleep(LOOK_GAP_S)
        waited = waiting_on(pid)
        if waited is not None:
            parent_waits = parent_waits or fd in waited
        for child in holders:
            if fd in (waiting_on(child) or ()):
                accepting.add(child)
        if accepting:
            break
    return parent_waits, sorted(accepting)


def _client_part(
    parent: set[int],
    listeners: dict[int, TcpSocket],
    held: dict[int, set[int]],
    table: dict[int, TcpSocket],
    exec_children: set[int],
    section: Section,
) -> None:
    """Children holding client sockets of other connections, and the parent that kept them."""
    ports = {sock.port for sock in listeners.values()}

    def clients(inodes: Iterable[int]) -> set[int]:
        return {
            i
            for i in inodes
            if not table.get(i, _NONE).listening and table.get(i, _NONE).port in ports
        }

    by_child = {child: clients(inodes) for child, inodes in held.items()}
    holders: dict[int, int] = {}
    for inodes in by_child.values():
        for inode in inodes:
            holders[inode] = holders.get(inode, 0) + 1
    kept = clients(parent)
    rows = []
    for child, inodes in by_child.items():
        shared = {i for i in inodes if i in kept or holders[i] > 1}
        # A child serves one connection: when all it holds are shared, one is its own.
        not_own = len(shared) - (1 if shared and shared == inodes else 0)
        if not_own:
            rows.append({"pid": child, "held": len(inodes), "not_own": not_own})
    kept_held = len(kept & set(holders))
    section["client_sockets"] = {"parent_holds": kept_held, "children": rows}
    if not rows:
        return
    most = max(row["not_own"] for row in rows)
    why = (
        f"the parent still held them when it forked (it holds {kept_held:,} client sockets its"
        " children hold too)"
        if kept_held
        else "the parent closed each client socket only after forking the next child"
    )
    problem = (
        f"{len(rows):,} of its {len(held):,} children hold client sockets of other connections"
        f" ({sum(row['not_own'] for row in rows):,} in all, up to {most:,} in one): {why};"
        " those clients see the connection close only when every holder has closed it"
    )
    fix = _fix(FIX_CLIENT, (row["pid"] for row in rows), exec_children)
    section["findings"].append(
        _finding("client-sockets", [row["pid"] for row in rows], problem, fix)
    )


def render_lines(section: Section | None) -> list[str]:
    """The section as lines of the doctor's report (none when there is nothing to say);
    None: the parent's descriptors could not be read."""
    if section is None:
        return [
            "  inherited: the parent's descriptors could not be read (permission): not examined"
        ]
    lines = []
    for finding in section["findings"]:
        lines.append(f"  inherited: {finding['problem']}")
        lines.append(f"    fix: {finding['fix']}")
    lines.extend(f"  inherited: {note}" for note in section["notes"])
    if section["unreadable"]:
        lines.append(
            f"  inherited: the descriptors of {len(section['unreadable']):,} children could not"
            " be read (permission): not examined"
        )
    return lines
