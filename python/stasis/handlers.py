"""Built-in handlers (stasis.register) for library types that pickle cannot capture, and the
module-state registrations for library modules. Each save function returns plain data; each load
function rebuilds the object from it. Loading calls only these functions, by their key.
"""
from __future__ import annotations

import _queue
import _struct
import _thread
import contextvars
import functools
import heapq
import io
import os
import re
import sys
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import SnapshotIOError

# ---- threading ----------------------------------------------------------------------------------


def _save_lock(lock: Any) -> bool:
    return lock.locked()


def _load_lock(locked: bool) -> Any:
    lock = _thread.allocate_lock()
    if locked:
        lock.acquire()
    return lock


_RLOCK_STATE = re.compile(r"owner=(\d+) count=(\d+)")


def _save_rlock(lock: Any) -> Tuple[int, int]:
    # The C RLock exposes its owner and count only in its repr.
    m = _RLOCK_STATE.search(repr(lock))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# While a program is resumed (stasis/program.py), held RLocks are collected here as
# (lock, old owner ident, count) and taken again by the threads that held them.
deferred_rlocks: Optional[List[Tuple[Any, int, int]]] = None


def _load_rlock(state: Any) -> Any:
    """The restored RLock is held `count` times by the thread that loads it (stasis.load), or by
    the thread that held it (a resumed program)."""
    owner, count = state if isinstance(state, tuple) else (0, state)  # snapshots before owners
    lock = _thread.RLock()
    if count and deferred_rlocks is not None:
        deferred_rlocks.append((lock, owner, count))
        return lock
    for _ in range(count):
        lock.acquire()
    return lock


def _save_condition(cond: threading.Condition) -> Any:
    # Waiters are the locks that threads blocked in wait() sleep on; a resumed program's threads
    # wait on the same (restored) locks, and notify() must find them.
    return (cond._lock, list(cond._waiters))


def _load_condition(state: Any) -> threading.Condition:
    lock, waiters = state if isinstance(state, tuple) else (state, [])
    cond = threading.Condition(lock)
    cond._waiters.extend(waiters)
    return cond


def _save_main_thread(_t: threading.Thread) -> None:
    return None


def _load_main_thread(_state: None) -> threading.Thread:
    """The main thread of the old process is the main thread of this one."""
    return threading.main_thread()


# ---- weak containers: referents are written strongly and die after loading unless held --------


def _save_wvd(d: weakref.WeakValueDictionary) -> dict:
    return dict(d.items())


def _save_wkd(d: weakref.WeakKeyDictionary) -> list:
    return list(d.items())


def _save_weakset(s: weakref.WeakSet) -> list:
    return list(s)


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
    q = _queue.SimpleQueue()
    for item in items:
        q.put(item)
    return q


# ---- contextvars and asyncio event loops --------------------------------------------------------
# A suspended asyncio program is captured between two callbacks of its event loop (or while the
# loop waits in select): its coroutines are suspended objects of the heap, its tasks and futures
# the pure-Python ones (stasis run keeps asyncio's C accelerator out, see program.py), its loop
# made again around the same ready and scheduled callbacks with a new selector and self-pipe.


def _save_context_var(var: Any) -> Tuple:
    # A new variable of the same name and default: the snapshot keeps which values it held (its
    # identity is shared within the snapshot); a variable of a library module is not that
    # module's any more.
    try:
        return (var.name, contextvars.Context().run(var.get))  # its default, seen from no context
    except LookupError:
        return (var.name,)


def _load_context_var(state: Tuple) -> Any:
    if len(state) > 1:
        return contextvars.ContextVar(state[0], default=state[1])
    return contextvars.ContextVar(state[0])


def _save_context(ctx: Any) -> list:
    return list(ctx.items())


def _load_context(items: list) -> Any:
    ctx = contextvars.Context()
    for var, value in items:
        ctx.run(var.set, value)
    return ctx


def _is_self_pipe_key(key: Any) -> bool:
    import asyncio.selector_events as se
    handle = key.data[0] if isinstance(key.data, tuple) and key.data else None
    callback = getattr(handle, "_callback", None)
    return getattr(callback, "__func__", None) is se.BaseSelectorEventLoop._read_from_self


def _save_selector(sel: Any) -> Tuple:
    watched = [k for k in sel.get_map().values() if not _is_self_pipe_key(k)]
    if watched:
        fds = ", ".join(str(k.fd) for k in watched)
        raise TypeError(f"it watches file descriptor(s) {fds} (sockets, pipes): their I/O cannot be "
                        "suspended with the program")
    return (type(sel),)


def _load_selector(state: Tuple) -> Any:
    return state[0]()


def _save_event_loop(loop: Any) -> dict:
    if getattr(loop, "_signal_handlers", None):
        raise TypeError("it has signal handlers (loop.add_signal_handler), which are not kept")
    now = loop.time()
    return {"class": type(loop), "selector": loop._selector, "ready": list(loop._ready),
            "scheduled": [(h, h._when - now) for h in loop._scheduled],
            "debug": loop._debug, "closed": loop._closed, "stopping": loop._stopping,
            "default_executor": loop._default_executor,
            "task_factory": loop._task_factory, "exception_handler": loop._exception_handler,
            "asyncgens": list(loop._asyncgens),
            "asyncgens_shutdown_called": loop._asyncgens_shutdown_called,
            "executor_shutdown_called": loop._executor_shutdown_called}


def _load_event_loop(state: dict) -> Any:
    """A new loop of the same class around the restored selector (it makes a new self-pipe);
    a loop that was running runs again when its run_forever() frame is rebuilt (stasis/program.py
    _restore_running_loops sets up what that method had set up)."""
    loop = state["class"](state["selector"])
    loop._ready.extend(state["ready"])
    now = loop.time()
    for handle, delay in state["scheduled"]:
        handle._when = now + delay
        heapq.heappush(loop._scheduled, handle)
    loop._debug = state["debug"]
    loop._stopping = state["stopping"]
    loop._default_executor = state["default_executor"]
    loop._task_factory = state["task_factory"]
    loop._exception_handler = state["exception_handler"]
    for agen in state["asyncgens"]:
        loop._asyncgens.add(agen)
    loop._asyncgens_shutdown_called = state["asyncgens_shutdown_called"]
    loop._executor_shutdown_called = state["executor_shutdown_called"]
    if state["closed"]:
        loop.close()
    return loop


def _save_asend(aw: Any) -> Tuple:
    """`agen.__anext__()` awaited by a suspended coroutine: made again as agen.asend(value); a
    started one continues the generator where it is suspended (its first send passes the same
    value the coroutine would: None from the task's step)."""
    from . import _engine
    agen, sendval, state = _engine.asend_parts(aw)
    if state == 2:
        raise TypeError("it has already finished")
    return (agen, sendval)


def _load_asend(state: Tuple) -> Any:
    agen, sendval = state
    return agen.asend(sendval)


def _save_asyncgen_hooks(hooks: Any) -> Tuple:
    return tuple(hooks)


def _load_asyncgen_hooks(values: Tuple) -> Any:
    return type(sys.get_asyncgen_hooks())(values)


def _save_policy(policy: Any) -> Tuple:
    return (type(policy),)


def _load_policy(state: Tuple) -> Any:
    """asyncio's event loop policy of this process, of the saved class (its per-thread loops are
    set again with the running loops)."""
    from asyncio import events
    if type(events._event_loop_policy) is not state[0]:
        events._event_loop_policy = state[0]()
    return events._event_loop_policy


def _save_asyncio_events_module(module: Any) -> Any:
    # The event loop policy: its class (its per-thread loops are set again with the running loops,
    # stasis/program.py _restore_running_loops).
    policy = module._event_loop_policy
    return None if policy is None else type(policy)


def _load_asyncio_events_module(module: Any, policy_class: Any) -> None:
    if policy_class is not None and type(module._event_loop_policy) is not policy_class:
        module._event_loop_policy = policy_class()


def _save_asyncio_tasks_module(module: Any) -> list:
    return list(module._all_tasks)


def _load_asyncio_tasks_module(module: Any, tasks: list) -> None:
    for task in tasks:
        module._register_task(task)


# ---- subprocess.Popen: only a finished child can be part of a snapshot --------------------------


def _save_popen(p: Any) -> dict:
    if p.returncode is None and p.poll() is None:
        raise TypeError(f"its child process {p.pid} is still running and cannot be suspended with "
                        "the program; wait for it (wait(), communicate()) first")
    return {k: (None if k in ("stdin", "stdout", "stderr") else v) for k, v in vars(p).items()}


def _load_popen(state: dict) -> Any:
    import subprocess
    p = subprocess.Popen.__new__(subprocess.Popen)
    vars(p).update(state)
    return p


# ---- struct.Struct: made again from its format -------------------------------------------------


def _save_struct(st: Any) -> str:
    return st.format


def _load_struct(fmt: str) -> Any:
    import struct
    return struct.Struct(fmt)


# ---- functools.lru_cache wrappers: made again around the same function (the cache starts empty) --


def _save_lru_cache(wrapper: Any) -> Tuple:
    params = wrapper.cache_parameters()
    extra = {k: v for k, v in vars(wrapper).items() if k != "__wrapped__"}
    return (wrapper.__wrapped__, params["maxsize"], params["typed"], extra)


def _load_lru_cache(state: Tuple) -> Any:
    func, maxsize, typed, extra = state
    wrapper = functools.lru_cache(maxsize=maxsize, typed=typed)(func)
    vars(wrapper).update(extra)
    return wrapper


# ---- open files ---------------------------------------------------------------------------------

_STD = {"<stdin>": "stdin", "<stdout>": "stdout", "<stderr>": "stderr"}


def _save_file(f: Any) -> Tuple:
    name = getattr(f, "name", None)
    if isinstance(name, str) and name in _STD:
        return ("std", _STD[name])
    if not isinstance(name, (str, bytes)):
        raise TypeError(f"an open file without a path (name={name!r}) cannot be reopened")
    closed = f.closed
    position = None
    if not closed:
        if f.writable():
            f.flush()
        position = f.tell()
    text = isinstance(f, io.TextIOBase)
    return ("file", os.path.abspath(os.fsdecode(name)), f.mode, position, closed, text,
            getattr(f, "encoding", None) if text else None, getattr(f, "errors", None) if text else None,
            type(f).__name__)


def _load_file(state: Tuple) -> Any:
    if state[0] == "std":
        return getattr(sys, state[1])
    _, path, mode, position, closed, text, encoding, errors, _kind = state
    # Reopen without truncating what the old process wrote: "w"/"x" become "r+".
    reopen = mode.replace("w", "r+").replace("x", "r+").replace("++", "+")
    if "b" not in reopen and not text:
        reopen += "b"
    try:
        f = open(path, reopen, encoding=encoding, errors=errors) if text else open(path, reopen)
    except FileNotFoundError:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              "it no longer exists") from None
    except OSError as e:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              f"{e.strerror}") from None
    if position is not None and "a" not in mode:
        f.seek(position)
    if closed:
        f.close()
    return f


def builtin_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """{type: (key, save, load)} registered by stasis at import."""
    h: Dict[type, Tuple[str, Callable, Callable]] = {
        _thread.LockType: ("stasis.lock", _save_lock, _load_lock),
        _thread.RLock: ("stasis.rlock", _save_rlock, _load_rlock),
        threading.Condition: ("stasis.condition", _save_condition, _load_condition),
        threading._MainThread: ("stasis.main_thread", _save_main_thread, _load_main_thread),
        weakref.WeakValueDictionary: ("stasis.weakvaluedict", _save_wvd, weakref.WeakValueDictionary),
        weakref.WeakKeyDictionary: ("stasis.weakkeydict", _save_wkd, weakref.WeakKeyDictionary),
        weakref.WeakSet: ("stasis.weakset", _save_weakset, weakref.WeakSet),
        functools._lru_cache_wrapper: ("stasis.lru_cache", _save_lru_cache, _load_lru_cache),
        _queue.SimpleQueue: ("stasis.simple_queue", _save_simple_queue, _load_simple_queue),
        _struct.Struct: ("stasis.struct", _save_struct, _load_struct),
    }
    h[contextvars.Context] = ("stasis.context", _save_context, _load_context)
    h[contextvars.ContextVar] = ("stasis.context_var", _save_context_var, _load_context_var)

    async def _agen() -> Any:
        yield None
    h[type(_agen().__anext__())] = ("stasis.asend", _save_asend, _load_asend)
    h[type(sys.get_asyncgen_hooks())] = ("stasis.asyncgen_hooks", _save_asyncgen_hooks, _load_asyncgen_hooks)
    for t in (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO):
        h[t] = ("stasis.file", _save_file, _load_file)
    return h


def _subprocess_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import subprocess
    return {subprocess.Popen: ("stasis.popen", _save_popen, _load_popen)}


def _logging_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import logging
    return {t: ("stasis.logger", _save_logger, _load_logger) for t in (logging.Logger, logging.RootLogger)}


def _asyncio_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import asyncio.unix_events as ue
    import selectors
    h: Dict[type, Tuple[str, Callable, Callable]] = {
        ue._UnixSelectorEventLoop: ("stasis.event_loop", _save_event_loop, _load_event_loop),
        ue._UnixDefaultEventLoopPolicy: ("stasis.event_loop_policy", _save_policy, _load_policy)}
    for t in (selectors.EpollSelector, selectors.PollSelector, selectors.SelectSelector):
        h[t] = ("stasis.selector", _save_selector, _load_selector)
    return h


# Handlers for the types of a library module, registered once the program has imported that
# module (never imported for this: a snapshot never needs them otherwise). A resumed program
# imports the ones its snapshot was written with before loading it (stasis/program.py).
MODULE_HANDLERS: Dict[str, Callable[[], Dict[type, Tuple[str, Callable, Callable]]]] = {
    "subprocess": _subprocess_handlers,
    "logging": _logging_handlers,
    "asyncio": _asyncio_handlers,
}


# ---- module state: library modules keep only registered state ----------------------------------


def _save_random_module(module: Any) -> Any:
    return module._inst.getstate()


def _load_random_module(module: Any, state: Any) -> None:
    module._inst.setstate(state)


def _save_threading_module(module: Any) -> Any:
    # threading._counter = itertools.count(1).__next__ numbers new threads ("Thread-7").
    return module._counter.__self__


def _load_threading_module(module: Any, counter: Any) -> None:
    module._counter = counter.__next__


def _save_decimal_module(module: Any) -> Any:
    """The main thread's decimal context (precision, rounding, traps...): a context variable of
    that thread, read from whichever thread writes the snapshot."""
    from . import _engine
    context = _engine.thread_context_value(threading.main_thread().ident, "decimal_context")
    return context if context is not None else module.getcontext()


def _load_decimal_module(module: Any, context: Any) -> None:
    module.setcontext(context)


def _save_logging_module(module: Any) -> Any:
    """Levels, handlers (with their formatters, filters and streams) and flags of the root logger
    and of every named logger: what logging.basicConfig / dictConfig set up."""
    def logger_state(lg: Any) -> Tuple:
        return (lg.level, lg.propagate, lg.disabled, list(lg.handlers), list(lg.filters))
    manager = module.root.manager
    loggers = {name: logger_state(lg) for name, lg in list(manager.loggerDict.items())
               if isinstance(lg, module.Logger)}
    return (logger_state(module.root), loggers, manager.disable)


def _load_logging_module(module: Any, state: Any) -> None:
    root_state, loggers, disable = state
    def apply(lg: Any, st: Tuple) -> None:
        lg.level, lg.propagate, lg.disabled, handlers, filters = st
        lg.handlers[:] = handlers
        lg.filters[:] = filters
    apply(module.root, root_state)
    for name, st in loggers.items():
        apply(module.getLogger(name), st)
    module.root.manager.disable = disable
    module.root.manager._clear_cache()
    for handlers in [root_state[3]] + [st[3] for st in loggers.values()]:
        for h in handlers:  # flushed and closed at exit, like handlers made in this process
            module._addHandlerRef(h)


def _save_logger(logger: Any) -> Optional[str]:
    import logging
    return None if logger is logging.root else logger.name


def _load_logger(name: Optional[str]) -> Any:
    """The logger of that name in this process (its configuration is the logging module's
    state, restored with it)."""
    import logging
    return logging.getLogger(name)


def builtin_module_states() -> Dict[str, Tuple[Callable, Callable]]:
    """{module name: (save(module) -> state, load(module, state))}."""
    return {"random": (_save_random_module, _load_random_module),
            "threading": (_save_threading_module, _load_threading_module),
            "decimal": (_save_decimal_module, _load_decimal_module),
            "asyncio.tasks": (_save_asyncio_tasks_module, _load_asyncio_tasks_module),
            "asyncio.events": (_save_asyncio_events_module, _load_asyncio_events_module),
            "logging": (_save_logging_module, _load_logging_module)}
