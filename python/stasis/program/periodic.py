"""Checkpoints written while the program keeps running: `--checkpoint-every SECONDS` (`--keep N`)
and stasis.checkpoint().

The program stops only while its threads reach safe points and their stacks are captured (the
freeze protocol, freeze.py), and for the fork() that follows: the child (writer.py) writes the
heap from its copy-on-write image and exits; the parent lets its threads go at once. Only the
forking thread exists in the child, which is why every thread's stack is captured before.

One thread of Stasis, the checkpointer, does all of it: it is the thread that forks (the child is
killed if that thread ends, so it must live as long as the program), it waits for the child and
says on stderr when one failed. A checkpoint due while the previous one is still being written is
skipped, not queued; stasis.checkpoint() waits for it instead. A checkpoint replaces PATH (with
--keep N, the previous ones become PATH.1 ... PATH.<N-1>) only when it is complete: the engine
writes a temporary file and renames it.

Pause. What the program sees is the freeze (its threads reach safe points, a few ms) and the fork,
which copies the process's page tables: 2 MiB of them per GiB of heap, ~25 ms on this kind of
machine. Between checkpoints the checkpointer asks the kernel to map the heap with huge pages
(MADV_COLLAPSE, engine/checkpoint_api.cpp), 512 times fewer page-table entries to copy; the
pages the program writes while a child lives are split again (copy-on-write) and collapsed anew
before the next checkpoint.

A suspension (quota, signal, stasis.suspend) stops the checkpoints for good, drops one being
written, and writes PATH itself (session.py).

What the child cannot have: other threads (their stacks are captured before), locks held by
them (the GIL and interpreter locks are made new; a lock a parked thread holds that the writer
needs — the same that would stop a suspension — ends the writer after WRITER_TIMEOUT), memory
mapped MADV_DONTFORK or MADV_WIPEONFORK (absent or zero in the child), file locks (fcntl locks are
not inherited: the child holds none, and takes none). A program that forks: its children are not
part of the checkpoint; a child it forks (os.fork, multiprocessing) takes no checkpoints and does
not suspend (it is not the program Stasis runs) and the suspension signals are reset there to
their default action. A program that waits for any child (os.wait(), waitpid(-1)) may collect a
writer: Stasis then sees whether the checkpoint arrived by the file it left.
"""
from __future__ import annotations

import atexit
import json
import os
import signal as _signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Tuple

from .. import _engine, internal_threads
from ..errors import NotSuspendableError, StasisError
from . import freeze, process_state, writer

if TYPE_CHECKING:
    from .session import Session

WRITER_TIMEOUT = 3600   # seconds a writer may take before it is ended (SIGALRM)
_POLL = 0.05            # seconds between looks at a running writer


@dataclass
class _Writer:
    pid: int
    path: str
    number: int
    explicit: bool        # stasis.checkpoint(): waited for at exit, never dropped
    started: float        # time.monotonic() at the fork
    pause: dict = field(default_factory=dict)


@dataclass
class _Request:
    path: str
    own: Tuple[int, list]
    done: threading.Event = field(default_factory=threading.Event)
    error: Optional[BaseException] = None


class Checkpointer:
    """The checkpoints of the program running in this process (at most one per process)."""

    def __init__(self, session: "Session") -> None:
        self.session = session
        self.every: Optional[float] = session.options.checkpoint_every
        self.keep = max(1, session.options.keep)
        self.window = threading.Lock()  # held from a checkpoint's freeze to its thaw
        self.wake = threading.Event()
        self.requests: List[_Request] = []
        self.writer: Optional[_Writer] = None
        self.writer_lock = threading.Lock()  # the writer is taken by one of _reap and drop_writer
        self.stopped = False            # a suspension is under way: no checkpoint
        self.number = 0                 # checkpoints started
        self.written = self.skipped = self.failed = 0
        self.collapsed = False          # huge pages asked for since the last fork
        self.lead = 0.05                # seconds before a checkpoint to ask for them
        self.log_path = os.environ.get("STASIS_CHECKPOINT_LOG") or None
        self.thread_lock = internal_threads.start(self._loop)

    # --- the checkpointer thread -----------------------------------------------------------------

    def _loop(self) -> None:
        due = time.monotonic() + self.every if self.every else None
        while True:
            self._reap(block=False)
            if self.stopped:
                self.wake.wait()
                self.wake.clear()
                continue
            if self.requests:
                request = self.requests.pop(0)
                self._reap(block=True)  # stasis.checkpoint() waits for the one being written
                self._checkpoint(request.path, request.own, request)
                continue
            now = time.monotonic()
            if due is not None and now >= due:
                if self.writer is not None:
                    self.skipped += 1
                    self._log({"event": "skipped", "writer": self.writer.number})
                elif not self.collapsed:  # late (the last writer just ended): huge pages first
                    self._collapse()
                    due = max(due, time.monotonic() + 0.02)
                    continue
                else:
                    self._checkpoint(self.session.path, None, None)
                due += self.every
                if due <= time.monotonic():
                    due = time.monotonic() + self.every
                continue
            # Huge pages for what the program allocated or wrote since the last fork: shortly
            # before the checkpoint (not right before: every switch of the GIL to this thread
            # then would stop the program a little longer), or when idle without a schedule.
            if self.writer is None and not self.collapsed and (due is None or now >= due - self.lead):
                self._collapse()
                continue
            timeout = None if due is None else due - now
            if self.writer is not None:
                timeout = _POLL if timeout is None else min(timeout, _POLL)
            self.wake.wait(timeout)
            self.wake.clear()

    def _collapse(self) -> None:
        self.collapsed = True
        if os.environ.get("STASIS_CHECKPOINT_HUGEPAGES", "1") == "0":
            return
        t0 = time.perf_counter()
        chunks, failed, unsupported = _engine.collapse_huge_pages()
        seconds = time.perf_counter() - t0
        self.lead = min(max(0.05, 2 * seconds), max(0.05, (self.every or 0) / 2))
        self._log({"event": "hugepages", "chunks": chunks, "failed": failed, "unsupported": bool(unsupported),
                   "seconds": round(seconds, 4)})

    def _checkpoint(self, path: str, own: Optional[tuple], request: Optional[_Request]) -> None:
        """Freeze, fork, thaw. The child writes and never comes back here."""
        session = self.session
        with self.window:
            if self.stopped or session.requested:
                if request:
                    request.error = NotSuspendableError(
                        "stasis.checkpoint() was called while a suspension of the program is in progress")
                    request.done.set()
                return
            self.number += 1
            number, requested_at = self.number, time.time()
            t0, c0 = time.perf_counter(), time.thread_time()
            threads = freeze.freeze_threads(session.thread_base, session.options.safe_point_timeout, own=own,
                                            cancel=lambda: self.stopped)
            if threads is None:  # freeze said why on stderr (unless stopped); every thread goes on
                self.failed += 1
                self._log({"event": "failed", "n": number, "why": "no safe point"})
                if request:
                    request.error = NotSuspendableError(
                        "stasis.checkpoint(): the program's other threads did not reach a safe point "
                        "(see the message above); no snapshot was written")
                    request.done.set()
                return
            t1, captured_at = time.perf_counter(), time.time()
            process_state.flush_std_streams()  # the child must find them empty: it never writes them
            c1 = time.thread_time()
            try:
                forked = _engine.fork_writer(WRITER_TIMEOUT)
            except OSError as e:
                _engine.thaw()
                self.failed += 1
                self._warn(f"cannot start the checkpoint writer: {e.strerror or e}")
                if request:
                    request.error = StasisError(f"stasis.checkpoint(): cannot fork: {e.strerror or e}")
                    request.done.set()
                return
            if not isinstance(forked, int):  # the child
                writer.write_checkpoint(session, threads, path, forked[1],
                                        trigger="checkpoint" if request else "periodic",
                                        requested_at=requested_at, captured_at=captured_at,
                                        checkpoint=own[0] if own else None,
                                        keep=self.keep)
            t2, c2, forked_at = time.perf_counter(), time.thread_time(), time.time()
            _engine.thaw()
            t3, c3 = time.perf_counter(), time.thread_time()
        self.writer = _Writer(forked, path, number, explicit=request is not None, started=time.monotonic(),
                              pause={"freeze_ms": round((t1 - t0) * 1e3, 3), "fork_ms": round((t2 - t1) * 1e3, 3),
                                     "stopped_ms": round((t3 - t1) * 1e3, 3), "forked_at": round(forked_at, 4),
                                     # CPU time of this thread: the same costs without the waits
                                     # for a CPU that a busy machine adds
                                     "fork_cpu_ms": round((c2 - c1) * 1e3, 3),
                                     "cpu_ms": round((c3 - c0) * 1e3, 3)})
        self.collapsed = False
        if request:
            request.done.set()

    def _reap(self, block: bool) -> None:
        w = self.writer
        if w is None:
            return
        try:
            pid, status = os.waitpid(w.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return
            code: Optional[int] = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # collected by the program (os.wait()), or by drop_writer
            code = None
        with self.writer_lock:
            if self.writer is not w:
                return  # dropped meanwhile (the program ended, or a suspension): said there
            self.writer = None
        seconds = round(time.monotonic() - w.started, 3)
        if code == 0 or (code is None and not any(_leftovers(w.path))):
            self.written += 1
            size = os.path.getsize(w.path) if os.path.exists(w.path) else None
            self._log({"event": "written", "n": w.number, "path": w.path, "write_s": seconds, "bytes": size, **w.pause})
            return
        self.failed += 1
        writer.remove_leftovers(w.path, w.pid)
        self._log({"event": "failed", "n": w.number, "status": code, "write_s": seconds})
        if code is not None and code < 0:
            signame = _signal.Signals(-code).name
            why = (f"it did not finish within {WRITER_TIMEOUT} s" if -code == _signal.SIGALRM
                   else f"the writer was killed by {signame}")
            self._warn(f"the checkpoint {w.path} was not written: {why}")
        # A writer that exits 1 said why itself; PARENT_GONE cannot happen while we are here.

    def drop_writer(self) -> None:
        """Ends the writer being written, if any, and removes what it left."""
        with self.writer_lock:
            w, self.writer = self.writer, None
        if w is None:
            return
        try:
            os.kill(w.pid, _signal.SIGKILL)
            os.waitpid(w.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # collected by the checkpointer's own wait meanwhile
        writer.remove_leftovers(w.path, w.pid)
        self._log({"event": "dropped", "n": w.number})

    # --- reports ---------------------------------------------------------------------------------

    def _warn(self, text: str) -> None:
        sys.stderr.write(f"stasis: warning: {text}; the program goes on\n")
        sys.stderr.flush()

    def _log(self, record: dict) -> None:
        """STASIS_CHECKPOINT_LOG=FILE: one JSON line per event (bench/checkpoint reads them)."""
        if not self.log_path:
            return
        record = {"t": round(time.time(), 4), **record}
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError:
            pass


def _leftovers(path: str):
    import glob
    return glob.glob(glob.escape(path) + ".tmp-*")


# --- the process's checkpointer, and the hooks of session.py / triggers.py ------------------------

_checkpointer: Optional[Checkpointer] = None
_pid = 0  # the process that owns _checkpointer (a forked child of the program has none)


def current() -> Optional[Checkpointer]:
    return _checkpointer if _pid == os.getpid() else None


def _start(session: "Session") -> Checkpointer:
    global _checkpointer, _pid
    cp = current()
    if cp is None:
        # What the child needs is imported here, in the program: an import in the child could
        # wait for an import lock a parked thread holds.
        from .. import _ensure_builtin_handlers
        _ensure_builtin_handlers()
        from .. import handlers  # noqa: F401
        cp = _checkpointer = Checkpointer(session)
        _pid = os.getpid()
        atexit.register(_at_exit)
    return cp


def install(session: "Session") -> None:
    """From triggers.install: with --checkpoint-every, the checkpoints start."""
    options = session.options
    if options.checkpoint_every is None:
        return
    if options.checkpoint_every <= 0:
        raise StasisError("--checkpoint-every needs a positive number of seconds")
    writer.remove_leftovers(session.path)
    _start(session)


def checkpoint_now(session: "Session", path: str, own: Tuple[int, list]) -> None:
    """stasis.checkpoint(path) from a program thread: returns once the writer is forked."""
    cp = _start(session)
    request = _Request(path, own)
    cp.requests.append(request)
    cp.wake.set()
    request.done.wait()
    if request.error is not None:
        raise request.error


def suspension_starts(session: "Session") -> None:
    """From the suspension's coordinator: waits for a checkpoint's pause to end, then stops the
    checkpoints and drops one being written (the suspension writes a newer state)."""
    cp = current()
    if cp is None:
        return
    cp.stopped = True      # a checkpoint's freeze under way gives up at its next look
    cp.window.acquire()
    cp.wake.set()
    cp.drop_writer()
    writer.rotate(session.path, cp.keep)


def suspension_abandoned(session: "Session") -> None:
    """The suspension gave up (no safe point): the checkpoints go on."""
    cp = current()
    if cp is None or not cp.stopped:
        return
    cp.stopped = False
    cp.window.release()
    cp.wake.set()


def finished() -> None:
    """The program has ended (not suspended): no checkpoint from now on; a periodic one being
    written is dropped, stasis.checkpoint()'s is waited for."""
    cp = current()
    if cp is None:
        return
    cp.stopped = True      # a freeze under way gives up at its next look
    with cp.window:        # ... and no checkpoint is between its freeze and its fork
        pass
    _at_exit()


def _at_exit() -> None:
    """A writer still running when the program ends: stasis.checkpoint()'s is waited for (the
    program asked for that file), a periodic one is dropped."""
    cp = current()
    w = cp.writer if cp is not None else None
    if w is None:
        return
    cp.stopped = True
    if w.explicit:
        cp._reap(block=True)
    else:
        cp.drop_writer()


def _after_fork_in_child() -> None:
    """In a child the program forks itself (os.fork, multiprocessing): not the program Stasis runs.
    It takes no checkpoint (current() is None there), and the suspension signals get their default
    action back: Slurm sends SIGTERM to every process of a job, and the program's child must not
    write the program's snapshot."""
    from .session import current as current_session
    session = current_session()
    if session is None:
        return
    for signum in session.options.signal_numbers():
        try:
            _signal.signal(signum, _signal.SIG_DFL)
        except (ValueError, OSError, StasisError):
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
