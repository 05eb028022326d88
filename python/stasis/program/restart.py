"""Starting a resumed program's threads again, and what their rebuilt frames need first."""
from __future__ import annotations

import _thread
import os
import sys
import threading
import types
from typing import Callable, Dict, List, Optional

from .. import _engine
from ..errors import StasisError
from . import process_state
from .freeze import BOOTSTRAP_INNER
from .layout import FrameRecord, ThreadRecord

REBUILD_TIMEOUT = 60   # seconds a resume waits for every thread's stack to be rebuilt


def fail(message: str, status: int = StasisError.code) -> None:
    """Ends a resume that cannot go on: nothing of the program has run yet."""
    sys.stderr.write(f"stasis: error: cannot resume: {message}\n")
    process_state.flush_std_streams()
    from .. import handover
    handover.report_failure(f"cannot resume: {message}", status)
    os._exit(status)


def replay_failed(status: int, message: str) -> None:
    """The replay trace's report of a frame it cannot rebuild (restore/replay.cpp): the resume
    ends with the error's status."""
    fail(message, status)


class RestartedThreads:
    """Starts the program's threads again on resume. Each restored Thread object is reset to
    "not started" and started on a bare thread that runs its usual bootstrap under replay: the
    bootstrap gives it its new ident, tstate lock and place in threading._active, then calls
    run(), whose frame and those above it are rebuilt from the thread's records. Before any frame
    is rebuilt, references in the records to the old process's threads are translated: the
    tstate locks join() waits on, and the owner idents in saved Condition states. Every thread,
    the main thread included, takes back the RLocks it held and waits at a barrier until all
    stacks are rebuilt; then all continue together."""

    def __init__(self, records: List[ThreadRecord], main_record: ThreadRecord, rlocks: list,
                 on_all_rebuilt: Optional[Callable[[], None]] = None) -> None:
        self.records = records
        self.main_record = main_record
        self.main_ident = main_record.ident
        self.rlocks = rlocks  # [(lock, old owner ident, count)]
        # on_all_rebuilt runs once every stack is rebuilt, before any thread goes on
        # (stasis restart: the new process tells the old one it is ready, stasis/handover.py).
        self.barrier = threading.Barrier(len(records) + 1, action=on_all_rebuilt)
        self.ready = threading.Event()
        self.idents: Dict[int, int] = {self.main_ident: threading.get_ident()}

    def new_ident(self, old: int) -> Optional[int]:
        return self.idents.get(old)

    def start(self) -> None:
        if not self.records:
            return
        old_locks = {}
        for record in self.records:
            t = record.thread
            old_locks[id(t)] = t._tstate_lock
            t._ident = t._native_id = t._tstate_lock = None
            t._is_stopped = False
            t._started = threading.Event()
            with threading._active_limbo_lock:
                threading._limbo[t] = t
            _thread.start_new_thread(self._run, (record,))
        for record in self.records:
            t = record.thread
            if not t._started.wait(REBUILD_TIMEOUT):
                fail(f"thread {t.name!r} did not start again within {REBUILD_TIMEOUT} s")
            self.idents[record.ident] = t.ident
        lock_map = {id(old_locks[id(r.thread)]): r.thread._tstate_lock for r in self.records
                    if old_locks[id(r.thread)] is not None}
        for record in self.records + [self.main_record]:
            for frame in record.frames:
                self._translate(frame, lock_map)
        self.ready.set()

    def _translate(self, frame: FrameRecord, lock_map: dict) -> None:
        in_threading = frame.code.co_filename == threading.__file__
        for name, value in list(frame.locals.items()):
            new = lock_map.get(id(value))
            if new is not None:
                frame.locals[name] = new
            elif (in_threading and type(value) is tuple and len(value) == 2 and type(value[1]) is int
                  and value[1] in self.idents):
                frame.locals[name] = (value[0], self.idents[value[1]])  # (count, owner) of an RLock

    def take_rlocks(self, old_ident: int) -> None:
        mine = old_ident == self.main_ident
        for lock, owner, count in self.rlocks:
            if owner == old_ident or (mine and owner not in self.idents):
                for _ in range(count):
                    lock.acquire()

    def _run(self, record: ThreadRecord) -> None:
        t = record.thread

        def before() -> None:
            self.ready.wait()
            restore_running_loops(record.frames)
            record.frames.clear()  # replay holds the records alone now (see resume.py)

        def rebuilt(_frame: types.FrameType) -> None:
            self.take_rlocks(record.ident)
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass  # the main thread ends the process

        try:
            _engine.replay(None, None, [f.to_payload() for f in record.frames], rebuilt, before, BOOTSTRAP_INNER,
                           replay_failed)
        except StasisError as e:
            fail(f"thread {t.name!r}: {e}", e.code)
        except BaseException as e:  # any failure here ends the resume
            fail(f"thread {t.name!r} could not be rebuilt: {type(e).__name__}: {e}")
        t._bootstrap()  # rebuilt by the replay trace as it calls run()


def restore_running_loops(frames: List[FrameRecord]) -> None:
    """An event loop whose run_forever() frame is on this thread's rebuilt stack is running
    again: what run_forever() set up before its loop (skipped by the jump) is set up here."""
    for frame in frames:
        code = frame.code
        if code.co_name != "run_forever" or not code.co_filename.endswith("asyncio/base_events.py"):
            continue
        loop = frame.locals.get("self")
        if loop is None:
            continue
        from asyncio import events
        loop._thread_id = threading.get_ident()
        events._set_running_loop(loop)
        if threading.current_thread() is threading.main_thread():
            events.set_event_loop(loop)  # as asyncio.run's Runner did
        sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                               finalizer=loop._asyncgen_finalizer_hook)
