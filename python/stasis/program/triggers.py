"""What starts a suspension request of a running program: `--suspend-after N` (the N-th safe
point), the suspension signals (`--signal`, repeatable, SIGUSR1 by default; `stasis suspend PID`
sends the first), the `--quota` timer; and what starts periodic checkpoints (`--checkpoint-every`,
periodic.py). `stasis.suspend()` and `stasis.checkpoint()` ask from the program itself
(session.py). Also the record `stasis suspend PID` reads to find a process's signal and path."""
from __future__ import annotations

import os
import signal as _signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from .. import _engine, internal_threads
from ..errors import StasisError
from .. import startup_signals
from . import freeze, periodic
from .options import signal_number

if TYPE_CHECKING:
    from .session import Session


def install(session: "Session", replaying: bool = False) -> None:
    """`replaying`: called by replay once the main thread's stack is rebuilt (resume), from its
    trace callback in the innermost program frame, not from a frame of Stasis that returns first."""
    o = session.options
    program_sees_its_own_trace()
    if o.suspend_after is not None:
        if o.suspend_after < 1:
            raise StasisError("--suspend-after counts safe points from 1")
        # The main thread parks at its N-th safe point and starts the coordinator from there.
        session.note_request("suspend-after")
        def arm() -> None:
            _engine.arm_thread(threading.main_thread().ident, session.base_code, countdown=o.suspend_after,
                               on_reached=session.start_coordinator, no_park_file=freeze.no_park_files())
        if replaying:
            # Armed from the main thread itself, the count would wait for the frame that called
            # arm to return: here the program's innermost frame (a module body returns only at
            # its end). Armed from another thread, it counts from the next line on.
            with internal_threads.start(arm):
                pass
        else:
            arm()
    program_pid = os.getpid()

    def on_signal(signum: int, _frame: object) -> None:
        if os.getpid() != program_pid:
            # A child the program forked, signalled before its after-fork hook gave the signal its
            # default action back (Slurm signals every process of a job): it acts as without Stasis.
            _signal.signal(signum, _signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        session.request(signal_trigger(signum))

    for signum in o.signal_numbers():  # --signal USR1 --signal TERM: a batch job needs both
        _signal.signal(signum, on_signal)
    came = startup_signals.take()
    if came:  # one came while Stasis was starting: asked for as the quota asks
        internal_threads.start(session.request, signal_trigger(came))
    if o.quota is not None:
        # The deadline is taken now: the timer thread first runs when it gets the GIL, which a
        # program that starts with a long C call (compile() of a big file) holds for seconds.
        def quota(deadline: float) -> None:
            time.sleep(max(0.0, deadline - time.monotonic()))
            session.request("quota")
        internal_threads.start(quota, time.monotonic() + o.quota)
    periodic.install(session)  # --checkpoint-every: the checkpointer thread
    write_pid_record(session)


def signal_trigger(signum: int) -> str:
    """The suspension's trigger for a signal: `signal SIGTERM` (a job script tells a Slurm time
    limit's SIGTERM from a preemption's SIGUSR1 in `stasis inspect`)."""
    try:
        return "signal " + _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def program_sees_its_own_trace() -> None:
    """sys.gettrace() and sys.settrace() behave as without Stasis while a request is pending: a
    thread armed for a safe point carries the parking trace (snapshot/safe_point.h), which calls
    the program's own trace function with every event; these two see and replace that function,
    never the parking trace (doctest, bdb, coverage and test.support save and restore it). So do
    sys.getprofile() and sys.setprofile() with the parking profile function of a watched thread
    (one with no profile function of the program's)."""
    if getattr(sys.settrace, "__stasis__", False):
        return
    real_settrace, real_gettrace = sys.settrace, sys.gettrace
    real_setprofile, real_getprofile = sys.setprofile, sys.getprofile

    def settrace(function: object) -> None:
        real_settrace(function)
        _engine.trace_replaced()

    def gettrace() -> object:
        armed, function = _engine.program_trace()
        return function if armed else real_gettrace()

    def setprofile(function: object) -> None:
        _engine.profile_replacing()
        real_setprofile(function)

    def getprofile() -> object:
        return None if _engine.profile_is_ours() else real_getprofile()

    for ours, real in ((settrace, real_settrace), (gettrace, real_gettrace), (setprofile, real_setprofile),
                       (getprofile, real_getprofile)):
        ours.__doc__, ours.__name__, ours.__qualname__ = real.__doc__, real.__name__, real.__name__
        ours.__module__ = "sys"
        ours.__stasis__ = True  # type: ignore[attr-defined]
    sys.settrace, sys.gettrace = settrace, gettrace
    sys.setprofile, sys.getprofile = setprofile, getprofile


def pid_dir() -> str:
    """Per-user directory (mode 0700, in the runtime directory, stasis/runtime_dir.py) of records
    of processes running under Stasis; records of processes that no longer exist are removed."""
    from .. import runtime_dir
    path = os.path.join(runtime_dir.runtime_dir(), "pids")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    runtime_dir.clean_stale(path)
    return path


def write_pid_record(session: "Session") -> None:
    """Lets `stasis suspend PID` find the signal and the snapshot path of this process."""
    try:
        with open(os.path.join(pid_dir(), f"{os.getpid()}.txt"), "w") as f:
            f.write(f"{signal_number(session.options.signal)}\n{session.path}\n")
    except OSError:
        pass  # `stasis suspend` then falls back to SIGUSR1 and cannot print the path


def record_give_up(why: str) -> None:
    """Adds a line `gave up: WHY` to this process's record: a waiting `stasis suspend PID` reports
    it at once instead of waiting out its --timeout."""
    try:
        with open(os.path.join(pid_dir(), f"{os.getpid()}.txt"), "a") as f:
            f.write("gave up: " + " ".join(why.split()) + "\n")
    except OSError:
        pass  # `stasis suspend` then waits out its --timeout
