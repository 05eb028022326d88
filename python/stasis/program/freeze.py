"""The freeze protocol: brings every thread of the program to a state whose stack can be captured
(parked at a safe point, or blocked in a C call that replay can issue again) and returns their
records; or gives up after --safe-point-timeout and lets every thread go.

Counterpart in C++: the parking trace (snapshot/safe_point.cpp: arm_thread, poll_threads,
park_states, settle, freeze, thaw) and snapshot/capture.cpp, which decides what a safe point is."""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Collection, Dict, List, Optional, Tuple

from .. import _engine, internal_threads
from ..errors import StasisError
from .layout import FrameRecord, ThreadRecord

_POLL = 0.005           # seconds between looks while threads run towards safe points
_SETTLE_WINDOW = 0.01   # GIL-free window in which a thread taken as blocked must not run

BOOTSTRAP_INNER = threading.Thread._bootstrap_inner.__code__


def no_park_files() -> tuple:
    """Files a thread never parks in (as its innermost frame): threading.py, whose frames hold
    locks other threads need to start; and socket.py, whose accept() holds a new connection as a
    bare descriptor number between taking it and wrapping it in a socket object -- parked there,
    the connection would be in no socket of the snapshot (a thread blocked in a call inside
    socket.py is still captured at that call)."""
    files = [threading.__file__]
    socket = sys.modules.get("socket")
    if socket is not None and getattr(socket, "__file__", None):
        files.append(socket.__file__)
    return tuple(files)

ThreadBase = Callable[[int], Tuple[object, bool]]


def _say_on_stderr(timeout: float) -> Callable[[str], None]:
    def say(why: str) -> None:
        sys.stderr.write(f"stasis: could not suspend within {timeout:g} s: {why}; the program keeps running\n")
        sys.stderr.flush()
    return say


def freeze_threads(thread_base: ThreadBase, timeout: float, own: Optional[Tuple[int, list]] = None,
                   on_timeout: Optional[Callable[[str], None]] = None,
                   at_once: bool = False,
                   cancel: Optional[Callable[[], bool]] = None,
                   blocked_calls: Optional[Dict[int, int]] = None) -> Optional[List[ThreadRecord]]:
    """Parks every program thread at a safe point, or finds it blocked in a call that replay can
    issue again, and returns the thread records (main thread first); `own` = (ident, frames) of
    the calling thread, already captured (stasis.checkpoint). `thread_base(ident)` gives the
    (base code, base_is_caller) of a thread's stack. Returns None after telling `on_timeout` (by
    default: stderr) what blocked it when no such point came within `timeout` seconds (every
    thread is then let go), or without a word as soon as `cancel()` is true (a periodic
    checkpoint no longer wanted). With `at_once` (a retry after a failed capture), threads are
    traced from the start, so that each parks at its very next safe point. `blocked_calls`, if
    given, gets the threads taken blocked in a call that takes data (for still_blocked()).

    A thread blocked in C is only taken as blocked when it ran no Python code across a window in
    which the GIL was free, and then, while the coordinator holds the GIL for several switch
    intervals, no thread asks for it: a thread whose call has returned (an acquire that succeeded)
    would. From that moment every armed thread parks at its next trace event; no program code runs
    until the process ends or the program is let go.

    A thread that is watched (it runs code called from C, e.g. a sort key) and stands still may be
    waiting for the others: parked threads are then let go and no thread parks until it is back at
    a safe point (snapshot/safe_point.h), so the program runs on meanwhile."""
    me = threading.get_ident()
    # The caller of stasis.checkpoint() waits while another thread freezes (periodic.py).
    exclude = {me, own[0]} if own is not None else {me}
    deadline = program_clock() + timeout
    previous, stable, blockers = None, 0, []
    seen: dict = {}  # ident -> trace events at the previous look
    while True:
        threads, strangers = program_threads(exclude=exclude)
        for ident, _t in threads:
            base, is_caller = thread_base(ident)
            _engine.arm_thread(ident, base, is_caller, no_park_file=no_park_files(), now=at_once)
        _engine.poll_threads()  # traces the threads whose stacks can reach a safe point now
        states = _engine.park_states()
        frames, blocked, blockers, silent = {}, [], list(strangers), []
        for ident, t in threads:
            parked, captured, events, why, traced, _watched = states.get(ident, (False, None, 0, "", False, False))
            if parked:
                frames[ident] = captured
            elif traced and seen.get(ident) == events:
                silent.append((ident, t, events, why))  # traced, yet no event: blocked in a call?
            else:
                blockers.append(f"thread {t.name!r}: {why or 'running towards a safe point'}")
            seen[ident] = events
        if silent:  # only then the frames are looked at from here (that costs frame objects)
            current = sys._current_frames()
            for ident, t, events, why in silent:
                top = current.get(ident)
                if top is None:  # between its last frame and leaving threading._active: wait
                    blockers.append(f"thread {t.name!r} has no Python frames")
                    continue
                base, is_caller = thread_base(ident)
                try:
                    frames[ident] = _engine.capture_stack(top, base, True, is_caller)
                    blocked.append((ident, events, top.f_lasti))
                except StasisError as e:
                    blockers.append(f"thread {t.name!r}: {why or str(e)}")
            current = top = None
        if not blockers:
            stable = stable + 1 if blocked == previous else 0
            previous = blocked
            if not blocked:
                _engine.freeze()
                return _thread_records(threads, frames, own)
            # Threads blocked in C: take them as they are only when none of them ran Python
            # code across a GIL-free window, and none is waiting for the GIL (a call that has
            # returned, e.g. an acquire that succeeded, would be issued twice on resume).
            if stable >= 1 and _engine.settle(3 * sys.getswitchinterval()):
                if _unmoved(blocked):
                    if blocked_calls is not None:
                        blocked_calls.update(_taking_calls(blocked, threads))
                    return _thread_records(threads, frames, own)
                _engine.thaw()  # one of them ran between the look and the settle: again
                previous, stable = None, 0
        if cancel is not None and cancel():
            _engine.thaw()
            return None
        if program_clock() > deadline:
            _engine.thaw()
            why = "; ".join(blockers) or "a thread kept running outside safe points"
            (on_timeout or _say_on_stderr(timeout))(f"no safe point was reached ({why})")
            return None
        if blocked:
            time.sleep(_SETTLE_WINDOW)
        else:
            _engine.wait_for_park(_POLL)  # woken as soon as a thread parks


def program_clock() -> float:
    """Monotonic seconds, less the time Stasis has spent rewriting modules: the clock a wait for a
    safe point is measured on (--safe-point-timeout), as a first run with a cold cache may rewrite
    numpy and pandas for 10 s or more inside one import, which is not the program's time."""
    from ..compiler_hooks.hook import rewriting_seconds
    return time.monotonic() - rewriting_seconds()


def _unmoved(blocked: list) -> bool:
    states = _engine.park_states()
    return all(states.get(ident, (0, 0, -1))[2] == events for ident, events, _ in blocked)


# System calls that take data or connections off a descriptor (in the first argument), and the
# poll calls CPython's sockets with a timeout wait in before they read (pollfd array, count).
SYSCALLS = {
    "x86_64": {"read": {0, 19, 45, 47, 299}, "accept": {43, 288}, "poll": {7, 271}},
    "aarch64": {"read": {63, 65, 207, 212, 243}, "accept": {202, 242}, "poll": {73}},
}


def syscall(native_id: int) -> Optional[Tuple[int, List[int]]]:
    """(number, arguments) of the system call a thread of this process is blocked in, or None
    when it is running."""
    try:
        with open(f"/proc/self/task/{native_id}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return None
    if not fields or not fields[0].lstrip("-").isdigit():
        return None
    return int(fields[0]), [int(x, 16) for x in fields[1:7]]


def _taking_calls(blocked: list, threads: list) -> Dict[int, int]:
    """{ident: trace events} of the threads taken as blocked in a call that takes data or a
    connection (read, recv, accept: SYSCALLS) — a call whose return after the capture would hold
    what it took outside the snapshot. A sleep or a poll that returns loses nothing: replay issues
    it again."""
    import platform
    table = SYSCALLS.get(platform.machine())
    if table is None:
        return {}
    taking = table["read"] | table["accept"]
    by_ident = dict(threads)
    out = {}
    for ident, events, _lasti in blocked:
        native = getattr(by_ident.get(ident), "native_id", None)
        call = syscall(native) if native else None
        if call is not None and call[0] in taking:
            out[ident] = events
    return out


def still_blocked(calls: Dict[int, int]) -> bool:
    """Whether every thread freeze_threads took as blocked in a taking call (`blocked_calls`) is in
    it still: none has asked for the GIL since (its call returned: a recv that got data) nor run
    on (its trace events moved). A caller that lets the GIL go after the freeze (stasis restart
    before it holds the sockets, a suspension while it writes) checks this, else what such a call
    returned would be lost with the snapshot."""
    if not calls:
        return True
    return _engine.settle(3 * sys.getswitchinterval()) and _unmoved([(i, n, None) for i, n in calls.items()])


def _thread_records(threads: list, frames: dict, own: Optional[tuple]) -> List[ThreadRecord]:
    main = threading.main_thread()
    if own is not None:
        frames[own[0]] = own[1]
        threads = threads + [(own[0], threading._active.get(own[0], main))]
    records = []
    for ident, t in threads:
        if ident not in frames:
            continue
        is_main = ident == main.ident
        records.append(ThreadRecord(ident=ident, name=t.name, main=is_main,
                                    frames=[FrameRecord.from_payload(f) for f in frames[ident]],
                                    thread=None if is_main else t))
    records.sort(key=lambda r: not r.main)
    return records


def program_threads(exclude: Collection[int]) -> tuple:
    """([(ident, Thread)] of the program's threads, [why not capturable] for threads that Stasis
    cannot rebuild: started by _thread.start_new_thread or by C code, not by threading.Thread)."""
    active = dict(threading._active)  # no lock: a parked thread may hold _active_limbo_lock
    threads, strangers = [], []
    for ident, t in active.items():
        if ident in exclude or ident in internal_threads.idents:
            continue
        target = getattr(t, "_target", None)
        if str(getattr(target, "__module__", "")).startswith("stasis."):
            continue
        if isinstance(t, threading._DummyThread):
            strangers.append(f"thread {ident} was not started by threading.Thread, so Stasis cannot "
                             "start it again on resume")
            continue
        threads.append((ident, t))
    frames = sys._current_frames()
    for ident, has_frames in _engine.thread_states():
        if ident in internal_threads.idents:
            continue  # first: the control channel's watcher is frameless while it waits for the GIL
        if not has_frames:
            # Created, not started yet (it shows its creator's ident meanwhile), or past its last
            # frame: wait until it runs Python code or is gone.
            strangers.append(f"a thread (ident {ident}) has no Python frames yet: starting, or run by C code")
            continue
        if ident in active or ident in exclude:
            continue
        frame = frames.get(ident)
        if frame is not None and frame.f_code.co_filename == threading.__file__:
            # A threading.Thread that is starting (in _limbo) or finishing (it leaves _active before
            # its last lines): its Thread object is half set up. Wait until that is over.
            strangers.append(f"thread {ident} is starting or finishing")
            continue
        where = f" (in {frame.f_code.co_qualname})" if frame is not None else ""
        strangers.append(f"thread {ident}{where} was not started by threading.Thread, so Stasis cannot "
                         "start it again on resume")
    return threads, strangers
