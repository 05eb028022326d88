"""Threads of Stasis itself (quota timer, suspension coordinator, update channel): bare threads,
not threading.Thread objects, so that the program's threading.enumerate() and active_count() are
what plain python3 would show, and so that a suspension never captures or waits for them.

`idents` also holds the ident of the control channel's watcher (updater/control_watch.cpp), a
thread with no Python thread state except while it serves a connection."""
from __future__ import annotations

import _thread
import os
import sys
from typing import Any, Callable, Set

idents: Set[int] = set()


def start(fn: Callable[..., Any], *args: Any) -> "_thread.LockType":
    """Runs fn(*args) in a bare thread. Returns a lock held until the thread has ended
    (`with lock: pass` waits for it)."""
    done = _thread.allocate_lock()
    done.acquire()

    def main() -> None:
        ident = _thread.get_ident()
        idents.add(ident)
        try:
            fn(*args)
        finally:
            _drop_dummy(ident)
            idents.discard(ident)
            done.release()
    try:
        _thread.start_new_thread(main, ())
    except BaseException:
        done.release()
        raise
    return done


def _drop_dummy(ident: int) -> None:
    """threading.current_thread() in a bare thread (code an update file calls, logging) registers a
    _DummyThread that CPython 3.11 never removes: the program would see it in threading.enumerate()
    and a suspension would refuse it as a thread it cannot start again."""
    threading = sys.modules.get("threading")
    if threading is not None and isinstance(threading._active.get(ident), threading._DummyThread):
        threading._active.pop(ident, None)


def _after_fork_in_child() -> None:
    # Only the thread that forked lives on in the child; the others' idents may be reused there.
    idents.intersection_update({_thread.get_ident()})


os.register_at_fork(after_in_child=_after_fork_in_child)
