"""Reaps with the kernel's own timestamps: a BPF program on the return of wait4(2) and
waitid(2), read in batches from a ring buffer (no wake-up per reap).

Why: a pidfd tells a reap only to a reader awake at that moment, so the recorder that
uses pidfds wakes once a child (or more), and on a loaded two-core machine those
wake-ups are most of what it costs (docs/events.md, "What it costs"). Here the kernel
stamps the reap itself, as the connector stamps forks and exits, and the reader may
come by as seldom as it likes without moving any time.

What the kernel allows decides the hook. There is no tracepoint in release_task(), the
reap itself (``sched_process_free`` fires a grace period later), and fentry probes may
be refused (EPERM on the 6.18 VM this was written on, where BTF-typed tracepoints load).
So one program rides the ``sys_exit`` tracepoint (``tp_btf``: its arguments are typed
by the kernel's BTF, no compiler or headers needed) and keeps the returns of wait4 and
waitid: who returned (the reaper's tgid), which PID, and the status the caller got.

- wait4: a PID returned with an exit or signal status is a reap; a stopped or continued
  child is not; where the caller passed no status pointer the status is unknown (None),
  and the reader must not take a PID it knows alive for reaped.
- waitid: the siginfo written says the PID and CLD_EXITED/KILLED/DUMPED; WNOWAIT leaves
  the child a zombie and is no reap.
- A child the kernel reaps itself calls for no wait: its parent ignores SIGCHLD or set
  SA_NOCLDWAIT. A second program, on ``sched_process_exit``, reads the parent's SIGCHLD
  action as the child exits and reports the reap then (the kernel releases it a few
  lines later in the same call), with the parent for reaper.
- A third program, on ``sched_process_exec``, keeps each exec's new command line (read
  from the process's own memory at the exec): a child that runs a command and is gone
  20 ms later, before anyone could read its /proc, keeps its name
  (:attr:`ReapProbe.commands`).
- Not seen: 32-bit processes (other system call numbers); a leader that exits before
  its other threads and is then reaped by the kernel (reported at its own exit).

Needs root (CAP_BPF and CAP_PERFMON), x86-64, and a kernel with BTF
(/sys/kernel/btf/vmlinux); :meth:`ReapProbe.open` says in one line what is missing.
Records the ring buffer had no room for are counted by the program (:attr:`lost`).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

from diagnostics.procfs import command_text

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
RING_BYTES = 1 << 22
"""Room for 58,000 reaps between two reads (72 bytes each)."""

_SYS_BPF = 321
_WAIT4, _WAITID = 61, 247
"""x86-64 system call numbers."""
_KERNEL_REAP, _COMMAND = 0, 1
"""The numbers the exit and exec programs write in place of a system call's."""
_COMMAND_BYTES = 256
"""Bytes of a command line the exec program keeps: more than a command column shows."""
_SIGCHLD, _SIG_IGN, _SA_NOCLDWAIT = 17, 1, 2
_MAP_CREATE, _PROG_LOAD, _RAW_TRACEPOINT_OPEN = 0, 5, 17
_MAP_TYPE_ARRAY, _MAP_TYPE_RINGBUF = 2, 27
_F_MMAPABLE = 1 << 10
"""An array map this process reads through mmap(2), with no system call."""
_PROG_TYPE_TRACING, _TRACE_RAW_TP = 26, 23
_BTF_KIND_STRUCT, _BTF_KIND_TYPEDEF = 4, 8
_WNOWAIT = 0x01000000
_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3
_BUSY, _DISCARD = 1 << 31, 1 << 30
_MACHINE_LEVEL = bytes(4)

# struct pt_regs on x86-64: where a system call's number and arguments are.
_REGS = {"r10": 56, "dx": 96, "si": 104, "orig_ax": 120}
_RECORD = struct.Struct("=QIIqQ32s")
"""What the program writes: timestamp, syscall number, caller's tgid, return value,
options, the first 32 bytes the caller got (wait4's status or waitid's siginfo)."""
_SIGINFO = struct.Struct("=8xi4xi4xi")
"""si_code, si_pid, si_status (the union's sigchld fields: pid at 16, uid, status at 24)."""

Reap = tuple[int, int, int, int | None]
"""(timestamp_ns on CLOCK_MONOTONIC, reaped PID, the reaper's tgid, its raw wait status or
None where the caller did not ask for it)."""


class ReapProbeUnavailable(Exception):
    """The probe cannot run here; ``str()`` says why in one line."""


class ReapProbe:
    """The attached program and its ring buffer; :meth:`open` makes one or says why not."""

    def __init__(self, ring: int, losses: int, held: list[int], ring_bytes: int) -> None:
        self._ring, self._held = ring, held
        self._mask = ring_bytes - 1
        page = mmap.PAGESIZE
        self._losses = mmap.mmap(losses, page, prot=mmap.PROT_READ)
        self._consumer = mmap.mmap(ring, page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # the producer page, then the data mapped twice over: no record wraps
        self._data = mmap.mmap(ring, page + 2 * ring_bytes, prot=mmap.PROT_READ, offset=page)
        self.commands: list[tuple[int, int, str]] = []
        """(stamp, PID, command line) of each exec, as :meth:`read` found them; the reader
        empties it."""
        self.namespaced: set[int] = set()
        """Reapers whose wait calls returned the PIDs of a PID namespace of their own, which
        are not the machine's: those reaps are left out (the reader cannot tell whose)."""

    @classmethod
    def open(cls, ring_bytes: int = RING_BYTES) -> ReapProbe:
        if platform.machine() != "x86_64":
            raise ReapProbeUnavailable(
                f"the BPF reap probe knows only x86-64, not {platform.machine()}"
            )
        try:
            btf = _Btf(VMLINUX_BTF.read_bytes())
            wait_returns, exits, execs = (
                btf.typedef("btf_trace_sys_exit"),
                btf.typedef("btf_trace_sched_process_exit"),
                btf.typedef("btf_trace_sched_process_exec"),
            )
            layout = _Layout.of(btf)
        except OSError as error:
            raise ReapProbeUnavailable(f"no kernel BTF ({VMLINUX_BTF}: {error.strerror})") from None
        opened: list[int] = []
        try:
            opened.append(ring := _create_map(_MAP_TYPE_RINGBUF, 0, 0, ring_bytes))
            opened.append(losses := _create_map(_MAP_TYPE_ARRAY, 4, 8, 1, _F_MMAPABLE))
            for program, tracepoint in (
                (_wait_returns(ring, losses, layout), wait_returns),
                (_kernel_reaps(ring, losses, layout), exits),
                (_commands_at_exec(ring, losses, layout), execs),
            ):
                opened.append(loaded := _load(program, tracepoint))
                attach = bytearray(16)
                struct.pack_into("=QI", attach, 0, 0, loaded)
                opened.append(_bpf(_RAW_TRACEPOINT_OPEN, attach))
            return cls(ring, losses, opened, ring_bytes)
        except OSError as error:
            for fd in opened:
                os.close(fd)
            raise ReapProbeUnavailable(
                f"the BPF reap probe could not load: {error.strerror}"
                + (
                    " (it needs root: CAP_BPF and CAP_PERFMON)"
                    if isinstance(error, PermissionError)
                    else ""
                )
            ) from None

    @property
    def lost(self) -> int:
        """Reaps the program had no room for in the ring buffer (read every turn: the
        count's map is mapped into this process, no system call)."""
        return int(struct.unpack_from("=Q", self._losses)[0])

    def read(self) -> list[Reap]:
        """The reaps recorded since the last read, in the order they were written."""
        reaps: list[Reap] = []
        data, mask, page = self._data, self._mask, mmap.PAGESIZE
        position = struct.unpack_from("=Q", self._consumer)[0]
        end = struct.unpack_from("=Q", data)[0]
        while position < end:
            at = page + (position & mask)
            length = struct.unpack_from("=I", data, at)[0]
            if length & _BUSY:
                break  # still being written: the next read takes it
            if not length & _DISCARD:
                record = _RECORD.unpack_from(data, at + 8)
                if record[1] == _COMMAND:
                    start = at + 8 + _RECORD.size
                    line = command_text(data[start : start + record[3]]) or ""
                    self.commands.append((record[0], record[2], line))
                elif record[-1][28:] != _MACHINE_LEVEL:
                    self.namespaced.add(record[2])
                elif (reap := _reap(*record)) is not None:
                    reaps.append(reap)
            position += ((length & ~(_BUSY | _DISCARD)) + 8 + 7) & ~7
        struct.pack_into("=Q", self._consumer, 0, position)
        return reaps

    def close(self) -> None:
        """Detach the programs (closing their links) and free the buffers. Idempotent."""
        if self._consumer.closed:
            return
        self._consumer.close()
        self._data.close()
        self._losses.close()
        for fd in reversed(self._held):  # the links first: detached before anything is freed
            os.close(fd)


def _reap(
    at: int, number: int, reaper: int, returned: int, options: int, got: bytes
) -> Reap | None:
    """A wait call's return (or the kernel's own reap) as a reap, or None where it reaped
    nothing."""
    if number == _KERNEL_REAP:
        return at, returned, reaper, struct.unpack_from("=i", got)[0]
    if number == _WAIT4:
        status, asked = struct.unpack_from("=iI", got)
        if not asked:
            return at, returned, reaper, None
        return (
            (at, returned, reaper, status)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status)
            else None
        )
    code, pid, value = _SIGINFO.unpack_from(got)
    if options & _WNOWAIT or not pid or code not in (_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED):
        return None
    if code == _CLD_EXITED:
        return at, pid, reaper, (value & 0xFF) << 8
    return at, pid, reaper, value | (0x80 if code == _CLD_DUMPED else 0)


class _Assembler:
    """BPF instructions, with jumps to named labels."""

    def __init__(self) -> None:
        self.code: list[list[int]] = []
        self._labels: dict[str, int] = {}
        self._jumps: list[tuple[int, str]] = []

    def op(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.code.append([code, dst, src, off, imm])

    def jump(self, code: int, dst: int, imm: int, label: str) -> None:
        self._jumps.append((len(self.code), label))
        self.op(code, dst, 0, 0, imm)

    def jump_reg(self, code: int, dst: int, src: int, label: str) -> None:
        self._jumps.append((len(self.code), label))
        self.op(code, dst, src, 0, 0)

    def label(self, name: str) -> None:
        self._labels[name] = len(self.code)

    def load_map(self, dst: int, fd: int) -> None:
        """ld_imm64 of a map (BPF_PSEUDO_MAP_FD): two instruction slots."""
        self.op(0x18, dst, 1, 0, fd)
        self.op(0)

    def assemble(self) -> bytes:
        for index, label in self._jumps:
            self.code[index][3] = self._labels[label] - index - 1
        return b"".join(
            struct.pack("=BBhi", code, src << 4 | dst, off, imm)
            for code, dst, src, off, imm in self.code
        )


# opcodes
_LDX32, _LDX64, _STX32, _STX64, _ST32, _ST64 = 0x61, 0x79, 0x63, 0x7B, 0x62, 0x7A
_MOV_REG, _MOV_IMM, _ADD_IMM, _AND_IMM, _RSH_IMM = 0xBF, 0xB7, 0x07, 0x57, 0x77
_JA, _JEQ, _JNE, _JNE_REG, _JLE, _JSLE = 0x05, 0x15, 0x55, 0x5D, 0xB5, 0xD5
_SUB_REG = 0x1F
_CALL, _EXIT, _ATOMIC_ADD64 = 0x85, 0x95, 0xDB
_KTIME_GET_NS, _GET_CURRENT_PID_TGID, _PROBE_READ_USER, _GET_CURRENT_TASK_BTF = 5, 14, 112, 158
_MAP_LOOKUP, _RINGBUF_OUTPUT = 1, 130
_NO_WAKEUP = 1
"""BPF_RB_NO_WAKEUP: the reader polls on its own clock; nobody waits on the buffer."""


def _wait_returns(ring: int, losses: int, layout: _Layout) -> bytes:
    """sys_exit(regs, ret): on wait4 > 0 and waitid == 0, the return as a _RECORD, with
    the caller's PID namespace level in the last 4 bytes of what it got."""
    a = _Assembler()
    a.op(_LDX64, 7, 1, 0)  # r7 = regs
    a.op(_LDX64, 8, 1, 8)  # r8 = the return value
    a.op(_LDX64, 9, 7, _REGS["orig_ax"])  # r9 = the system call
    _clear_got(a)
    a.jump(_JEQ, 9, _WAIT4, "wait4")
    a.jump(_JEQ, 9, _WAITID, "waitid")
    a.label("out")
    a.op(_MOV_IMM, 0, imm=0)
    a.op(_EXIT)
    a.label("wait4")  # wait4(pid, *status, options, rusage)
    a.jump(_JSLE, 8, 0, "out")
    a.op(_LDX64, 1, 7, _REGS["dx"])
    a.op(_STX64, 10, 1, -40)
    a.op(_LDX64, 3, 7, _REGS["si"])
    a.jump(_JEQ, 3, 0, "emit")
    a.op(_ST32, 10, 0, -28, 1)  # a status was asked for
    a.op(_MOV_REG, 1, 10)
    a.op(_ADD_IMM, 1, imm=-32)
    a.op(_MOV_IMM, 2, imm=4)
    a.op(_CALL, imm=_PROBE_READ_USER)
    a.jump(_JA, 0, 0, "emit")
    a.label("waitid")  # waitid(which, id, *infop, options, rusage)
    a.jump(_JNE, 8, 0, "out")
    a.op(_LDX64, 1, 7, _REGS["r10"])
    a.op(_STX64, 10, 1, -40)
    a.op(_LDX64, 3, 7, _REGS["dx"])
    a.jump(_JEQ, 3, 0, "out")
    a.op(_MOV_REG, 1, 10)
    a.op(_ADD_IMM, 1, imm=-32)
    a.op(_MOV_IMM, 2, imm=32)
    a.op(_CALL, imm=_PROBE_READ_USER)
    a.label("emit")
    a.op(_CALL, imm=_GET_CURRENT_TASK_BTF)
    a.op(_LDX64, 1, 0, layout.thread_pid)
    a.op(_LDX32, 1, 1, layout.pid_level)
    a.op(_STX32, 10, 1, -4)  # the caller's PID namespace level: 0, the machine's PIDs
    a.op(_CALL, imm=_GET_CURRENT_PID_TGID)
    a.op(_RSH_IMM, 0, imm=32)
    a.op(_STX32, 10, 0, -52)  # the reaper: the caller
    a.op(_STX64, 10, 8, -48)
    _emit(a, ring, losses)
    return a.assemble()


def _kernel_reaps(ring: int, losses: int, layout: _Layout) -> bytes:
    """sched_process_exit(p, ...): a process the kernel will reap itself as it exits (its
    parent ignores SIGCHLD or set SA_NOCLDWAIT; not traced; exit signal SIGCHLD), as a
    _RECORD with number _KERNEL_REAP, its parent's tgid for the reaper, its exit code."""
    a = _Assembler()
    a.op(_LDX64, 6, 1, 0)  # r6 = p
    _clear_got(a)
    a.op(_LDX32, 1, 6, layout.pid)
    a.op(_LDX32, 2, 6, layout.tgid)
    a.jump_reg(_JNE_REG, 1, 2, "out")  # a thread, not a process
    a.op(_STX64, 10, 1, -48)
    a.op(_LDX64, 7, 6, layout.real_parent)
    a.op(_LDX32, 1, 6, layout.ptrace)
    a.jump(_JNE, 1, 0, "out")
    a.op(_LDX32, 1, 6, layout.exit_signal)
    a.jump(_JNE, 1, _SIGCHLD, "out")
    a.op(_LDX32, 1, 6, layout.exit_code)
    a.op(_STX32, 10, 1, -32)
    a.op(_LDX32, 1, 7, layout.tgid)
    a.op(_STX32, 10, 1, -52)  # the reaper: the parent, on whose behalf the kernel reaps
    a.op(_LDX64, 8, 7, layout.sighand)
    a.op(_LDX64, 1, 8, layout.sigchld_handler)
    a.jump(_JEQ, 1, _SIG_IGN, "emit")
    a.op(_LDX64, 1, 8, layout.sigchld_flags)
    a.op(_AND_IMM, 1, imm=_SA_NOCLDWAIT)
    a.jump(_JNE, 1, 0, "emit")
    a.label("out")
    a.op(_MOV_IMM, 0, imm=0)
    a.op(_EXIT)
    a.label("emit")
    a.op(_MOV_IMM, 9, imm=_KERNEL_REAP)
    _emit(a, ring, losses)
    return a.assemble()


def _commands_at_exec(ring: int, losses: int, layout: _Layout) -> bytes:
    """sched_process_exec(p, ...): the new command line (the first _COMMAND_BYTES of its
    arguments, as /proc/PID/cmdline has them), as a _RECORD with number _COMMAND, the
    length in place of a return value, the bytes after it. Read at the exec itself, it
    is there for a child that is gone before anyone could read /proc."""
    a = _Assembler()
    base = -(_RECORD.size + _COMMAND_BYTES)
    for offset in range(base, 0, 8):  # all of it written: the verifier lets no byte unset
        a.op(_ST64, 10, 0, offset, 0)
    a.op(_LDX64, 6, 1, 0)  # r6 = p
    a.op(_LDX64, 7, 6, layout.mm)
    a.op(_LDX64, 8, 7, layout.arg_start)
    a.op(_LDX64, 3, 7, layout.arg_end)
    a.op(_SUB_REG, 3, 8)
    a.jump(_JSLE, 3, 0, "out")
    a.jump(_JLE, 3, _COMMAND_BYTES, "sized")
    a.op(_MOV_IMM, 3, imm=_COMMAND_BYTES)
    a.label("sized")
    a.op(_STX64, 10, 3, base + 16)  # the length, where a return value goes
    a.op(_MOV_REG, 2, 3)
    a.op(_MOV_REG, 1, 10)
    a.op(_ADD_IMM, 1, imm=-_COMMAND_BYTES)
    a.op(_MOV_REG, 3, 8)
    a.op(_CALL, imm=_PROBE_READ_USER)
    a.op(_LDX32, 1, 6, layout.tgid)
    a.op(_STX32, 10, 1, base + 12)
    a.op(_MOV_IMM, 9, imm=_COMMAND)
    _emit(a, ring, losses, base=base)
    a.label("out")
    a.op(_MOV_IMM, 0, imm=0)
    a.op(_EXIT)
    return a.assemble()


def _clear_got(a: _Assembler) -> None:
    """Zero the record's 32 bytes of what the caller got (r10-32 .. r10-1)."""
    for offset in (-32, -24, -16, -8):
        a.op(_ST64, 10, 0, offset, 0)


def _emit(a: _Assembler, ring: int, losses: int, base: int = -_RECORD.size) -> None:
    """Stamp the record built from r10 + ``base`` to r10 (number in r9), write it to
    ``ring``; what had no room is counted in ``losses``. Goes on at the caller's "out"."""
    a.op(_STX32, 10, 9, base + 8)
    a.op(_CALL, imm=_KTIME_GET_NS)
    a.op(_STX64, 10, 0, base)
    a.load_map(1, ring)
    a.op(_MOV_REG, 2, 10)
    a.op(_ADD_IMM, 2, imm=base)
    a.op(_MOV_IMM, 3, imm=-base)
    a.op(_MOV_IMM, 4, imm=_NO_WAKEUP)
    a.op(_CALL, imm=_RINGBUF_OUTPUT)
    a.jump(_JEQ, 0, 0, "out")
    a.op(_ST32, 10, 0, base - 8, 0)  # no room: count it
    a.load_map(1, losses)
    a.op(_MOV_REG, 2, 10)
    a.op(_ADD_IMM, 2, imm=base - 8)
    a.op(_CALL, imm=_MAP_LOOKUP)
    a.jump(_JEQ, 0, 0, "out")
    a.op(_MOV_IMM, 1, imm=1)
    a.op(_ATOMIC_ADD64, 0, 1, 0, 0)
    a.jump(_JA, 0, 0, "out")


_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(command: int, attr: bytearray) -> int:
    """bpf(2); OSError on failure."""
    result: int = _libc.syscall(
        _SYS_BPF, command, (ctypes.c_char * len(attr)).from_buffer(attr), len(attr)
    )
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def _create_map(kind: int, key_size: int, value_size: int, entries: int, flags: int = 0) -> int:
    attr = bytearray(72)
    struct.pack_into("=IIIII", attr, 0, kind, key_size, value_size, entries, flags)
    return _bpf(_MAP_CREATE, attr)


def _load(program: bytes, attach_type_id: int) -> int:
    """A tracing program on the BTF-typed tracepoint ``attach_type_id``; a refusal by the
    verifier raises OSError with its last line."""
    code = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"GPL")  # the helpers used are GPL-only
    log = ctypes.create_string_buffer(1 << 16)
    attr = bytearray(128)
    struct.pack_into(
        "=IIQQIIQ", attr, 0, _PROG_TYPE_TRACING, len(program) // 8, ctypes.addressof(code),
        ctypes.addressof(license_), 1, len(log), ctypes.addressof(log),
    )  # fmt: skip
    attr[48:56] = b"reaps\0\0\0"
    struct.pack_into("=I", attr, 68, _TRACE_RAW_TP)
    struct.pack_into("=I", attr, 108, attach_type_id)
    try:
        return _bpf(_PROG_LOAD, attr)
    except OSError as error:
        said = log.value.decode(errors="replace").strip().splitlines()
        if said and error.errno not in (1, 13):
            raise OSError(error.errno, f"{error.strerror}: {said[-1]}") from None
        raise


class _Btf:
    """The running kernel's BTF (linux/btf.h): type ids and struct layouts by name."""

    def __init__(self, data: bytes) -> None:
        magic, _, _, header, types_at, types_length, strings_at, strings_length = (
            struct.unpack_from("=HBBIIIII", data)
        )
        if magic != 0xEB9F:
            raise OSError(0, "not BTF")
        self._data = data
        self._strings = (header + strings_at, header + strings_at + strings_length)
        self._types = (header + types_at, header + types_at + types_length)

    def _name_at(self, name: str) -> int:
        start, end = self._strings
        found = self._data.find(b"\0" + name.encode() + b"\0", start, end)
        if found < 0:
            raise OSError(0, f"no {name}")
        return found + 1 - start

    def _find(self, kind: int, name: str) -> tuple[int, int]:
        """(type id, where its header is) of the type ``name`` of ``kind``."""
        wanted, data = self._name_at(name), self._data
        position, end = self._types
        unpack, type_id = struct.Struct("=II").unpack_from, 1
        while position < end:
            name_at, info = unpack(data, position)
            if info >> 24 & 0x1F == kind and name_at == wanted:
                return type_id, position
            position += 12 + _BTF_EXTRA[info >> 24 & 0x1F](info & 0xFFFF)
            type_id += 1
        raise OSError(0, f"no {name}")

    def typedef(self, name: str) -> int:
        return self._find(_BTF_KIND_TYPEDEF, name)[0]

    def layout(self, name: str) -> tuple[int, dict[str, int]]:
        """Struct ``name``'s size and its named members' byte offsets, those of its
        anonymous structs and unions among them (mm_struct keeps arg_start in one)."""
        _, position = self._find(_BTF_KIND_STRUCT, name)
        size = struct.unpack_from("=I", self._data, position + 8)[0]
        return size, self._members(position, 0)

    def _members(self, position: int, base: int) -> dict[str, int]:
        info = struct.unpack_from("=I", self._data, position + 4)[0]
        bitfields = info >> 31
        start, _ = self._strings
        members: dict[str, int] = {}
        for index in range(info & 0xFFFF):
            name_at, kind, offset = struct.unpack_from(
                "=III", self._data, position + 12 + 12 * index
            )
            at = base + (offset & 0xFFFFFF if bitfields else offset) // 8
            if name_at:
                end = self._data.index(b"\0", start + name_at)
                members[self._data[start + name_at : end].decode()] = at
            else:  # an anonymous struct or union: its members are the struct's
                members.update(self._members(self._positions()[kind], at))
        return members

    @functools.cache  # noqa: B019 - one per probe's start, dropped with it
    def _positions(self) -> list[int]:
        """Where each type's header is, by type id (0: void, none)."""
        data, (position, end) = self._data, self._types
        positions, unpack = [0], struct.Struct("=I").unpack_from
        while position < end:
            positions.append(position)
            info = unpack(data, position + 4)[0]
            position += 12 + _BTF_EXTRA[info >> 24 & 0x1F](info & 0xFFFF)
        return positions


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the exit program reads in the kernel's structs (byte offsets)."""

    pid: int
    tgid: int
    ptrace: int
    exit_signal: int
    exit_code: int
    real_parent: int
    mm: int
    arg_start: int
    """In a struct mm_struct, as arg_end: where the command line's arguments are."""
    arg_end: int
    thread_pid: int
    pid_level: int
    """In a struct pid: its namespace's level (0: the machine's)."""
    sighand: int
    sigchld_handler: int
    """In a struct sighand_struct: action[SIGCHLD - 1].sa.sa_handler."""
    sigchld_flags: int

    @classmethod
    def of(cls, btf: _Btf) -> _Layout:
        _, task = btf.layout("task_struct")
        _, sighand = btf.layout("sighand_struct")
        action_size, action = btf.layout("k_sigaction")
        _, sigaction = btf.layout("sigaction")
        _, pid = btf.layout("pid")
        _, mm = btf.layout("mm_struct")
        sigchld = sighand["action"] + action_size * (_SIGCHLD - 1) + action["sa"]
        return cls(
            pid=task["pid"],
            tgid=task["tgid"],
            ptrace=task["ptrace"],
            exit_signal=task["exit_signal"],
            exit_code=task["exit_code"],
            real_parent=task["real_parent"],
            mm=task["mm"],
            arg_start=mm["arg_start"],
            arg_end=mm["arg_end"],
            thread_pid=task["thread_pid"],
            pid_level=pid["level"],
            sighand=task["sighand"],
            sigchld_handler=sigchld + sigaction["sa_handler"],
            sigchld_flags=sigchld + sigaction["sa_flags"],
        )


_BTF_EXTRA = {
    kind: (lambda count, each=each: each * count) if per_member else (lambda count, each=each: each)
    for kind, (each, per_member) in {
        1: (4, False), 2: (0, False), 3: (12, False), 4: (12, True), 5: (12, True), 6: (8, True),
        7: (0, False), 8: (0, False), 9: (0, False), 10: (0, False), 11: (0, False), 12: (0, False),
        13: (8, True), 14: (4, False), 15: (12, True), 16: (0, False), 17: (4, False),
        18: (0, False), 19: (12, True),
    }.items()
}  # fmt: skip
"""Bytes after a BTF type's 12-byte header, by kind, given its vlen (linux/btf.h)."""
