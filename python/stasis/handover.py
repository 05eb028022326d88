"""`stasis restart PID [--patch FILE...]`: a running service handed over to a new process of itself,
with its whole state and its very sockets, so that no client sees a refused or reset connection.

The old process (the control channel's "restart" operation, updater/control.py, calls serve()):
  1. starts the new process, then freezes the program as a suspension does (program/freeze.py);
  2. holds still every socket a thread is blocked reading (ReadGuard): from the freeze on, data
     and connections that arrive stay in the kernel for the new process, never in the old one;
  3. writes a snapshot in which each socket is a descriptor to take over (handlers/net.py);
  4. passes the snapshot's path and the sockets' descriptors (SCM_RIGHTS) to the new process,
     `stasis resume --patch ...`, started at step 1 so that its interpreter and Stasis are
     loaded by now;
  5. waits for "ready" (the new process has loaded the heap, applied the patches and rebuilt
     every stack, and waits before running any program code), answers "go", replies to the
     client and ends. If the new process fails or times out, it is killed, the sockets are let
     go and the old program goes on serving; the reply says why.
The kernel's listening sockets, with their accept queues, are never closed: connections that
arrive during the switch wait in the queue for the new process.

The new process (resume with $STASIS_HANDOVER set): setup_restore() before the load (waits for
the snapshot and the descriptors), after_load() once the heap is built (then resume applies the
patches, updater/snapshot_patch.py), all_rebuilt() as the barrier every rebuilt thread waits at
opens ("ready", then wait for "go"), report_failure() when it cannot go on.
"""
from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .errors import BY_CODE, NotAvailableError, NotSuspendableError, StasisError, TakeoverError

# platform, shutil, subprocess and tempfile are imported by the functions that use them: every
# `stasis resume` imports this module, and only a handover needs them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

ENV = "STASIS_HANDOVER"
_HOLD_ATTEMPTS = 50          # freezes tried before giving up because reads kept completing
_REBLOCK_WAIT = 1.0          # seconds an interrupted reader has to block again on its placeholder


# --- the old process ---------------------------------------------------------------------------------


def serve(request: Dict[str, Any]) -> Dict[str, Any]:
    """The "restart" operation in the old process; returns the reply, which asks the control
    channel to end the process once it is sent ("_exit_after_reply")."""
    import shutil
    import tempfile
    from .program.session import current
    from . import _engine
    import socket
    started = time.monotonic()
    session = current()
    if session is None:
        raise NotAvailableError(f"process {os.getpid()} is not a program started with `stasis run` or "
                                "`stasis resume`; only those can be restarted")
    if session.requested:
        raise NotSuspendableError("a suspension of the program is already in progress")
    patches = [_patch_argument(p) for p in request.get("patches") or []]
    deadline = time.monotonic() + float(request.get("timeout") or 120.0)
    workdir = tempfile.mkdtemp(prefix="stasis-restart-", dir=_fast_tmp())
    path = os.path.join(workdir, "handover.snap")
    channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = guard = None
    try:
        # The new process starts at once: its interpreter and Stasis load while the program still
        # serves, and it waits for the snapshot and the sockets.
        child = _spawn(session, path, patches, theirs.fileno())
        theirs.close()
        threads, guard, captured = _capture(session, path, deadline)
        frozen_at = guard.frozen_at
        written_at = time.monotonic()
        try:
            _send_sockets(channel, path, sorted({guard.holders.get(fd, fd) for fd in captured}))
        except OSError:
            _await_ready(child, channel, deadline)  # it has ended: say how
            raise
        _await_ready(child, channel, deadline)
        channel.send(b"go")
    except BaseException:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        channel.close()
        theirs.close()
        if guard is not None:
            guard.release()
            _engine.thaw()
            session.requested = False
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return {"pid": child.pid, "old_pid": os.getpid(), "frozen_seconds": round(time.monotonic() - frozen_at, 4),
            "snapshot_seconds": round(written_at - frozen_at, 4),
            "seconds": round(time.monotonic() - started, 4), "sockets": len(captured),
            "held": len(guard.holders), "_exit_after_reply": 0}


def _capture(session: Any, path: str, deadline: float) -> Tuple[List[Any], "ReadGuard", Dict[int, Any]]:
    """The program frozen, held still (ReadGuard) and written to `path` with its sockets as
    descriptors to take over; returns the threads, the guard and {fd: socket} captured. A snapshot
    that cannot be written at this point (an object in a state it cannot be captured in, such as
    a buffer a thread is reading into) lets the program go on and is tried again until `deadline`."""
    from .handlers import net
    from . import _engine
    while True:
        threads, guard = _freeze_and_hold(session, deadline)
        guard.frozen_at = time.monotonic()
        net.begin_capture(inherit=True, inherit_fds=guard.holders)
        try:
            _check_frames(threads)  # before writing what can be large
            session.write_snapshot(threads, path, level=1)  # read once, at once: speed over size
            return threads, guard, dict(net.settings.captured)
        except StasisError:
            guard.release()
            _engine.thaw()
            session.requested = False
            if time.monotonic() > deadline - 1.0:
                raise
            time.sleep(0.05)  # the program moves on to another point
        finally:
            net.end_capture()


def _check_frames(threads: List[Any]) -> None:
    """What the snapshot of these stacks would refuse at once, found before the heap is written:
    a memoryview of memory no Python object owns (the one a BufferedReader lends SocketIO.readinto
    under readline is not among them: the capture records it as the type, snapshot/capture.cpp)."""
    from .errors import UnsupportedObjectError
    for record in threads:
        for frame in record.frames:
            for name, value in frame.locals.items():
                if isinstance(value, memoryview) and value.obj is None:
                    raise UnsupportedObjectError(f"thread {record.name!r}: {frame.code.co_qualname}'s local "
                                                 f"{name!r} is a memoryview of a buffer no Python object owns")


def _freeze_and_hold(session: Any, deadline: float) -> Tuple[List[Any], "ReadGuard"]:
    """The program frozen (program/freeze.py) with its blocked readers held still (ReadGuard);
    tried again while a read completes between the two."""
    from .program import freeze
    from . import _engine
    for attempt in range(_HOLD_ATTEMPTS):
        session.note_request("restart")
        calls: Dict[int, int] = {}
        threads = freeze.freeze_threads(session.thread_base, session.options.safe_point_timeout,
                                        blocked_calls=calls)
        if threads is None:
            session.requested = False
            raise NotSuspendableError(f"process {os.getpid()} reached no safe point within "
                                      f"{session.options.safe_point_timeout:g} s (its stderr says what blocked "
                                      "it); it keeps running")
        guard = ReadGuard(threads)
        # A thread taken as blocked in a call whose call returned before the hold (data arrived
        # for its recv) holds what it got outside the capture: the freeze is tried again.
        if guard.hold() and freeze.still_blocked(calls):
            return threads, guard
        guard.release()
        _engine.thaw()
        session.requested = False
        if time.monotonic() > deadline:
            break
        time.sleep(0.01 * (attempt + 1))
    raise NotSuspendableError("requests kept arriving on connections being read, and no moment was found "
                              "to hold them; the service keeps running (try again)")


_FDS_PER_MESSAGE = 200  # below the kernel's SCM_MAX_FD (253)


def _send_sockets(channel: Any, path: str, fds: List[int]) -> None:
    """The snapshot's path and its sockets' descriptors (SCM_RIGHTS), each under the number the
    snapshot records for it."""
    import socket
    chunks = [fds[i:i + _FDS_PER_MESSAGE] for i in range(0, len(fds), _FDS_PER_MESSAGE)] or [[]]
    for i, chunk in enumerate(chunks):
        message = json.dumps({"snapshot": path, "fds": chunk, "last": i == len(chunks) - 1}).encode()
        socket.send_fds(channel, [message], chunk)


def _patch_argument(patch: Any) -> Tuple[str, str]:
    """A patch of the request as the option of `stasis resume` that applies it, checked first."""
    from .updater.errors import UpdateRefusedError
    if not isinstance(patch, dict) or patch.get("kind") not in ("auto", "source", "update") \
            or not isinstance(patch.get("path"), str):
        raise UpdateRefusedError("a patch of the restart request is malformed")
    _check_patch(patch["path"])
    option = {"auto": "--patch", "source": "--source", "update": "--update"}[patch["kind"]]
    module = patch.get("module")
    return option, patch["path"] + (f"={module}" if module else "")


def _check_patch(path: str) -> None:
    from .updater.errors import UpdateRefusedError
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise UpdateRefusedError(f"cannot read the patch {path}: {e.strerror}") from None
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise UpdateRefusedError(f"the patch {path} is not valid Python: {e.msg} (line {e.lineno})") from None


def _fast_tmp() -> Optional[str]:
    """/dev/shm when it is a writable directory (the snapshot lives there only during the switch)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _spawn(session: Any, path: str, patches: List[Tuple[str, str]], channel: int) -> subprocess.Popen:
    import subprocess
    from .handlers import net
    o = session.options
    argv = [sys.executable, "-m", "stasis", "resume", path, "--snapshot", session.path, "--signal", o.signal,
            "--safe-point-timeout", repr(o.safe_point_timeout)]
    if o.quota is not None:
        argv += ["--quota", repr(o.quota)]
    if o.key_file:
        argv += ["--key-file", o.key_file]
    if net.settings.tcp_established:
        argv.append("--tcp-established")
    for option, value in patches:  # applied by `stasis resume` once the heap is loaded
        argv += [option, value]
    env = dict(os.environ)
    env[ENV] = json.dumps({"channel": channel, "old_pid": os.getpid()})
    try:
        return subprocess.Popen(argv, pass_fds=[channel], env=env, cwd=os.getcwd())
    except OSError as e:
        raise TakeoverError(f"cannot start the new process: {e.strerror or e}") from None


def _await_ready(child: subprocess.Popen, channel: Any, deadline: float) -> None:
    """Returns when the new process says "ready"; raises what it reported when it fails first."""
    import subprocess
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotSuspendableError("the new process did not take over in time; it was stopped and the "
                                      "old one goes on serving")
        readable, _, _ = select.select([channel], [], [], min(remaining, 0.5))
        if not readable:
            continue
        message = channel.recv(65536).decode("utf-8", "replace")
        if message == "ready":
            return
        if message.startswith("error "):
            code, _, text = message[len("error "):].partition(" ")
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                pass
            cls = BY_CODE.get(int(code) if code.isdigit() else 90, StasisError)
            raise cls(f"the new process could not take over: {text}; the old one goes on serving")
        if not message:
            try:
                status = child.wait(10)
            except subprocess.TimeoutExpired:
                status = None
            how = f"ended with status {status}" if status is not None and status >= 0 else \
                f"was killed by signal {-status}" if status is not None else "closed its channel"
            raise TakeoverError(f"the new process {how} before taking over (its stderr is the service's); "
                              "the old one goes on serving")


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


# --- holding still the sockets threads are blocked reading ----------------------------------------------

def _is_socket(fd: int) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _poll_fds(args: List[int]) -> List[int]:
    import ctypes
    address, count = args[0], args[1]
    if not address or not 0 < count <= 4096:
        return []
    raw = ctypes.string_at(address, 8 * count)  # struct pollfd {int fd; short events, revents;}
    import struct
    return [struct.unpack_from("i", raw, 8 * i)[0] for i in range(count)]


def _in_selector(frame: Any) -> bool:
    """A poll issued by a selector (selectors, asyncio): its result only wakes Python code, which
    parks before reading anything (the freeze), so the poll needs no holding."""
    name = frame.f_code.co_filename if frame is not None else ""
    return name.endswith(("selectors.py", "socketserver.py")) or "/asyncio/" in name


def _reads_socket_file(record: Any) -> bool:
    """Whether the thread was captured blocked in SocketIO.readinto (a socket file's reader)."""
    top = record.frames[-1] if record.frames else None
    return (top is not None and top.row is not None and top.code.co_qualname == "SocketIO.readinto"
            and top.code.co_filename.endswith("/socket.py"))  # as internals::is_socket_io_readinto


class ReadGuard:
    """From the freeze on, no thread of the old process may take data or a connection off a socket
    the new process will read. A thread blocked reading (recv, accept) or waiting to read (a socket
    with a timeout polls first) has its descriptor number pointed at a placeholder that never
    delivers anything (the real socket stays open under another number, `holders`, which is what
    is passed on); a reader is interrupted so that CPython issues its call again, now on the
    placeholder. If a reader was not back in its call in time, data had arrived before the hold:
    hold() says False, release() puts everything back and the freeze is tried again."""

    def __init__(self, threads: List[Any]) -> None:
        self.threads = threads
        self.holders: Dict[int, int] = {}       # original fd -> fd holding the real socket
        self.placeholders: List[Any] = []
        self.readers: List[Tuple[int, int, int, int]] = []  # (ident, native id, syscall, fd)
        self.frozen_at = 0.0

    def hold(self) -> bool:
        import platform
        from .program import freeze
        table = freeze.SYSCALLS.get(platform.machine())
        if table is None:
            return True  # no table of system calls for this machine: nothing is held (documented)
        frames = sys._current_frames()
        waiting: set = set()
        for record in self.threads:
            thread = threading.main_thread() if record.main else record.thread
            native = getattr(thread, "native_id", None)
            call = freeze.syscall(native) if native else None
            if _reads_socket_file(record) and (call is None or (call[0] not in table["read"]
                                                                and call[0] not in table["poll"])):
                # Captured waiting in SocketIO.readinto, its recv has returned since (it waits for
                # the GIL): the bytes are in the reader's buffer, not yet counted there, and would
                # be lost with this snapshot. The freeze is tried again.
                return False
            if call is None:
                continue
            nr, args = call
            if nr in table["read"] or nr in table["accept"]:
                if _is_socket(args[0]):
                    self.readers.append((record.ident, native, nr, args[0]))
                    waiting.add(args[0])
            elif nr in table["poll"] and not _in_selector(frames.get(record.ident)):
                waiting.update(fd for fd in _poll_fds(args) if fd >= 0 and _is_socket(fd))
        frames = None
        for fd in sorted(waiting):
            self._hold(fd)
        from . import _engine
        for ident, _native, _nr, _fd in self.readers:
            _engine.interrupt_thread(ident)
        deadline = time.monotonic() + _REBLOCK_WAIT
        while True:
            if all(self._back(r) for r in self.readers):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)  # the interrupted readers need the GIL to issue their call again

    @staticmethod
    def _back(reader: Tuple[int, int, int, int]) -> bool:
        from .program import freeze
        _ident, native, nr, fd = reader
        call = freeze.syscall(native)
        return call is not None and call[0] == nr and call[1][0] == fd

    def _hold(self, fd: int) -> None:
        import socket
        real = socket.socket(fileno=fd)  # a view of the descriptor, let go again without closing it
        try:
            listening = bool(real.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            kind = real.type
        finally:
            real.detach()
        if listening:
            placeholder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            placeholder.bind("")  # an abstract name of the kernel's choosing: nobody connects to it
            placeholder.listen(1)
            keep = [placeholder]
        else:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM if kind == socket.SOCK_DGRAM
                                     else socket.SOCK_STREAM)
            placeholder, keep = a, [a, b]
        hidden = os.dup(fd)
        self.holders[fd] = hidden
        os.dup2(placeholder.fileno(), fd, inheritable=os.get_inheritable(hidden))
        self.placeholders.extend(keep)

    def release(self) -> None:
        """Every descriptor back to its real socket; readers issue their calls on it again."""
        from . import _engine
        for fd, hidden in self.holders.items():
            os.dup2(hidden, fd, inheritable=os.get_inheritable(fd))
            _close(hidden)
        self.holders.clear()
        for ident, _native, _nr, _fd in self.readers:
            try:
                _engine.interrupt_thread(ident)
            except OSError:
                pass
        for p in self.placeholders:
            p.close()
        self.placeholders.clear()


# --- the new process -----------------------------------------------------------------------------------

_plan: Optional[Dict[str, Any]] = None
_channel: Any = None


def active() -> bool:
    return _plan is not None


def setup_restore() -> None:
    """Before the snapshot is loaded (cli `resume`): waits for the old process's snapshot and
    sockets, whose descriptors handlers/net.py takes over by the number the snapshot records.
    Meanwhile the modules a resume needs are imported. The old process giving up ends this one."""
    global _plan, _channel
    text = os.environ.get(ENV)
    if not text:
        return
    import socket
    try:
        plan = json.loads(text)
        channel_fd = int(plan["channel"])
    except (ValueError, KeyError, TypeError):
        raise StasisError(f"${ENV} is malformed (it is set by `stasis restart` for the process it starts)") from None
    _channel = socket.socket(fileno=channel_fd)
    _channel.set_inheritable(True)  # kept across the hash-seed re-execution of resume, if any
    received = {int(k): v for k, v in plan.get("received", {}).items()}
    if "snapshot" not in plan:
        import importlib
        for name in ("stasis.program.resume", "stasis.handlers", "stasis.updater.control"):
            importlib.import_module(name)  # while the old process freezes and writes
        while True:
            message, fds, _flags, _address = socket.recv_fds(_channel, 65536, _FDS_PER_MESSAGE + 1)
            if not message:
                os._exit(0)  # the old process gave up: it goes on serving, nothing to say
            part = json.loads(message)
            for recorded, fd in zip(part["fds"], fds):
                import fcntl
                received[recorded] = fcntl.fcntl(fd, fcntl.F_DUPFD, 256)  # above the numbers kept free
                os.close(fd)
            if part["last"]:
                break
        plan.update(snapshot=part["snapshot"], received=received)
        os.environ[ENV] = json.dumps(plan)  # what a re-executed resume finds
    _plan = plan
    from .handlers import net
    net.settings.inherited = dict(received)


def after_load() -> None:
    """Once the heap is built, before any thread runs: descriptors no socket took are closed and
    the snapshot is removed (the patches come next: `stasis resume --patch`, program/resume.py)."""
    if _plan is None:
        return
    import shutil
    os.environ.pop(ENV, None)  # not for the program's own children
    from .handlers import net
    for fd in list(net.settings.inherited.values()):
        _close(fd)
    net.settings.inherited.clear()
    _channel.set_inheritable(False)
    shutil.rmtree(os.path.dirname(_plan["snapshot"]), ignore_errors=True)


def all_rebuilt() -> None:
    """Every thread's stack is rebuilt and waits at the barrier: tell the old process, and go on
    only when it answers "go" (it has stopped for good). Anything else: end quietly, the old
    process goes on serving."""
    if _plan is None:
        return
    _channel.send(b"ready")
    if _channel.recv(64) != b"go":
        os._exit(0)
    _channel.close()


def report_failure(message: str, code: int) -> None:
    """The new process cannot take over: the old one learns why (it goes on serving)."""
    if _plan is None:
        return
    try:
        _channel.send(f"error {code} {message}".encode())
    except OSError:
        pass


# --- the client: `stasis restart` ---------------------------------------------------------------------


def command(pid: int, patches: List[Any], timeout: float) -> int:
    """`stasis restart`: `patches` are updater/snapshot_patch.py PatchSpecs (read, paths absolute)."""
    from .updater import channel
    request = {"op": "restart", "protocol": channel.PROTOCOL, "timeout": timeout,
               "patches": [{"kind": p.kind, "path": p.path, "module": p.module} for p in patches]}
    for p in patches:
        _check_patch(p.path)
    conn = channel.connect(pid, timeout=timeout + 30.0)
    try:
        channel.send(conn, request)
        while True:
            reply = channel.recv(conn)
            if reply is None:
                raise StasisError(f"process {pid} closed the control connection without an answer")
            if "event" not in reply:
                break
    finally:
        conn.close()
    if not reply.get("ok"):
        cls = BY_CODE.get(reply.get("code", 90), StasisError)
        raise cls(reply.get("error", "the restart failed"))
    new_pid = reply["pid"]
    end = time.monotonic() + 10.0
    while time.monotonic() < end and _alive(pid):
        time.sleep(0.01)
    print(new_pid)
    sys.stderr.write(f"stasis: process {pid} handed over to process {new_pid} ({reply['sockets']} socket(s); "
                     f"the program was stopped for {reply['frozen_seconds']:.3f} s: snapshot written in "
                     f"{reply['snapshot_seconds']:.3f} s, then the new process started and loaded it)\n")
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
