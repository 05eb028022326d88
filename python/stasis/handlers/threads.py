"""Threads and their synchronisation objects: locks (locked state), RLocks (owner and count),
Condition (its lock and waiters), the main thread object, queue.SimpleQueue (its items), and
threading's thread-name counter (module state)."""
from __future__ import annotations

import _queue
import _thread
import contextlib
import re
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

def _save_lock(lock: Any) -> bool:
    return lock.locked()


# The most times a restored RLock is taken again: a held RLock's count is how deep its owner's
# recursion went, far below this; a larger count in a snapshot would only make loading spin.
MAX_RLOCK_COUNT = 1 << 20


def _load_lock(locked: bool) -> Any:
    if type(locked) is not bool:
        raise TypeError("a lock's state is not a bool")
    lock = _thread.allocate_lock()
    if locked:
        lock.acquire()
    return lock


_RLOCK_STATE = re.compile(r"owner=(\d+) count=(\d+)")


def _save_rlock(lock: Any) -> Tuple[int, int]:
    recorded = _rlock_states.get(id(lock)) if _rlock_states else None
    if recorded is not None and recorded[0] is lock:
        return recorded[1], recorded[2]
    # The C RLock exposes its owner and count only in its repr.
    m = _RLOCK_STATE.search(repr(lock))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# While a program is resumed (stasis/program/resume.py), held RLocks are not taken by the thread that
# loads them but collected as (lock, old owner ident, count), to be taken again by the restarted
# threads that held them: see collect_held_rlocks().
_held_rlocks: Optional[List[Tuple[Any, int, int]]] = None


@contextlib.contextmanager
def collect_held_rlocks() -> Iterator[List[Tuple[Any, int, int]]]:
    """Within this block, a loaded RLock that was held comes back free, and (lock, old owner
    ident, count) is appended to the list it yields."""
    global _held_rlocks
    collected: List[Tuple[Any, int, int]] = []
    _held_rlocks = collected
    try:
        yield collected
    finally:
        _held_rlocks = None


# While a loaded program is written again (`stasis patch`): the RLocks collected free by
# collect_held_rlocks() are written with their recorded owner and count.
_rlock_states: Dict[int, Tuple[Any, int, int]] = {}


@contextlib.contextmanager
def write_held_rlocks(collected: List[Tuple[Any, int, int]]) -> Iterator[None]:
    """Within this block, the RLocks of `collected` (collect_held_rlocks) are written as held by
    their recorded owners, not as the free locks they are in this process."""
    _rlock_states.update({id(lock): (lock, owner, count) for lock, owner, count in collected})
    try:
        yield
    finally:
        _rlock_states.clear()


def _load_rlock(state: Any) -> Any:
    """The restored RLock is held `count` times by the thread that loads it (stasis.load), or by
    the thread that held it (a resumed program, collect_held_rlocks)."""
    owner, count = state if type(state) is tuple and len(state) == 2 else (0, state)  # before owners
    if type(owner) is not int or type(count) is not int or not 0 <= count <= MAX_RLOCK_COUNT:
        raise TypeError(f"an RLock's state is not (owner ident, count <= {MAX_RLOCK_COUNT})")
    lock = _thread.RLock()
    if count and _held_rlocks is not None:
        _held_rlocks.append((lock, owner, count))
        return lock
    for _ in range(count):
        lock.acquire()
    return lock


def _save_condition(cond: threading.Condition) -> Any:
    # Waiters are the locks that threads blocked in wait() sleep on; a resumed program's threads
    # wait on the same (restored) locks, and notify() must find them.
    return (cond._lock, list(cond._waiters))


_LOCK_TYPES = (_thread.LockType, _thread.RLock)


def _load_condition(state: Any) -> threading.Condition:
    lock, waiters = state if type(state) is tuple and len(state) == 2 else (state, [])
    # Condition(lock) takes the lock's methods and iterates nothing else: only locks are given.
    if type(lock) not in _LOCK_TYPES or type(waiters) is not list or \
            not all(type(w) is _thread.LockType for w in waiters):
        raise TypeError("a Condition's state is not (a lock, a list of waiter locks)")
    cond = threading.Condition(lock)
    cond._waiters.extend(waiters)
    return cond


def _save_main_thread(_t: threading.Thread) -> None:
    return None


def _load_main_thread(_state: None) -> threading.Thread:
    """The main thread of the old process is the main thread of this one."""
    return threading.main_thread()



# ---- queue.SimpleQueue (C): no way to read its items but taking them; they are put back at once --


def _save_simple_queue(q: Any) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except _queue.Empty:
            break
    for item in items:
        q.put(item)
    return items


def _load_simple_queue(items: list) -> Any:
    if type(items) is not list:
        raise TypeError("a SimpleQueue's state is not a list of its items")
    q = _queue.SimpleQueue()
    for item in items:
        q.put(item)
    return q



def _save_threading_module(module: Any) -> Any:
    # threading._counter = itertools.count(1).__next__ numbers new threads ("Thread-7").
    return module._counter.__self__


def _load_threading_module(module: Any, counter: Any) -> None:
    import itertools
    if type(counter) is not itertools.count:
        raise TypeError("threading's thread-name counter is not an itertools.count")
    module._counter = counter.__next__


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    return {
        _thread.LockType: ("stasis.lock", _save_lock, _load_lock),
        _thread.RLock: ("stasis.rlock", _save_rlock, _load_rlock),
        threading.Condition: ("stasis.condition", _save_condition, _load_condition),
        threading._MainThread: ("stasis.main_thread", _save_main_thread, _load_main_thread),
        _queue.SimpleQueue: ("stasis.simple_queue", _save_simple_queue, _load_simple_queue),
    }


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"threading": (_save_threading_module, _load_threading_module)}
