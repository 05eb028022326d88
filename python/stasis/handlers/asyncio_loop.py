"""contextvars and asyncio event loops.

A suspended asyncio program is captured between two callbacks of its event loop (or while the
loop waits in select): its coroutines are suspended objects of the heap, its tasks and futures
the pure-Python ones (stasis run keeps asyncio's C accelerator out, see program/process_state.py),
its loop made again around the same ready and scheduled callbacks, its selector with the
registrations of its servers and transports (whose sockets net.py makes again), a new self-pipe,
and its signal handlers.
The contextvars and async-generator handlers are always registered; the loop's only once the
program has imported asyncio."""
from __future__ import annotations

import contextvars
import heapq
import sys
from typing import Any, Callable, Dict, Tuple

def _save_context_var(var: Any) -> Tuple:
    # A new variable of the same name and default: the snapshot keeps which values it held (its
    # identity is shared within the snapshot); a variable of a library module is not that
    # module's any more.
    try:
        return (var.name, contextvars.Context().run(var.get))  # its default, seen from no context
    except LookupError:
        return (var.name,)


def _load_context_var(state: Tuple) -> Any:
    if type(state) is not tuple or len(state) not in (1, 2) or type(state[0]) is not str:
        raise TypeError("a ContextVar's state is not (name[, default])")
    if len(state) > 1:
        return contextvars.ContextVar(state[0], default=state[1])
    return contextvars.ContextVar(state[0])


def _save_context(ctx: Any) -> list:
    return list(ctx.items())


def _load_context(items: list) -> Any:
    # ctx.run(var.set, value): var must be a ContextVar, whose set is the C method
    if type(items) is not list or not all(type(i) is tuple and len(i) == 2 and type(i[0]) is contextvars.ContextVar
                                          for i in items):
        raise TypeError("a Context's state is not a list of (ContextVar, value)")
    ctx = contextvars.Context()
    for var, value in items:
        ctx.run(var.set, value)
    return ctx


def is_self_pipe_key(key: Any) -> bool:
    """A selector key of an event loop's own wake-up pipe (a new loop makes its own)."""
    se = sys.modules.get("asyncio.selector_events")
    if se is None:
        return False
    handle = key.data[0] if isinstance(key.data, tuple) and key.data else None
    callback = getattr(handle, "_callback", None)
    return getattr(callback, "__func__", None) is se.BaseSelectorEventLoop._read_from_self


def _selector_classes() -> tuple:
    import selectors
    return tuple(getattr(selectors, n) for n in ("EpollSelector", "PollSelector", "SelectSelector",
                                                  "DevpollSelector", "KqueueSelector") if hasattr(selectors, n))


def _save_event_loop(loop: Any) -> dict:
    # Its ready and scheduled callbacks, its selector's registrations (servers, transports) and its
    # signal handlers are not part of it: each handle refers back to the loop, and the loop is
    # built in one piece from this state, so a handle met inside it would make the encoder meet
    # the loop again, once per handle (snapshots quadratic in the number of tasks or connections).
    # They are kept with the module state of asyncio.base_events (_save_base_events_module).
    return {"class": type(loop), "selector_class": type(loop._selector),
            "debug": loop._debug, "closed": loop._closed, "stopping": loop._stopping,
            "default_executor": loop._default_executor,
            "task_factory": loop._task_factory, "exception_handler": loop._exception_handler,
            "asyncgens": list(loop._asyncgens),
            "asyncgens_shutdown_called": loop._asyncgens_shutdown_called,
            "executor_shutdown_called": loop._executor_shutdown_called}


def _load_event_loop(state: dict) -> Any:
    """A new loop of the same class around a new selector of the same class (it makes a new
    self-pipe; the registrations come with asyncio.base_events's module state); a loop that was
    running runs again when its run_forever() frame is rebuilt (stasis/program/restart.py
    _restore_running_loops sets up what that method had set up)."""
    import asyncio.unix_events as ue
    from . import net
    # The classes are called: only an event loop class of this process's asyncio (or a subclass),
    # around a new selector of one of the selectors module's own classes.
    checks = (
        ("is not a dict", lambda: type(state) is dict),
        ("has no event loop class", lambda: isinstance(state.get("class"), type)
         and issubclass(state["class"], ue._UnixSelectorEventLoop)),
        ("has no selector class", lambda: state.get("selector_class") in _selector_classes()),
        ("has async generators that are not a list", lambda: type(state.get("asyncgens")) is list),
    )
    for what, ok in checks:
        if not ok():
            raise TypeError(f"an event loop's state {what}")
    loop = state["class"](state["selector_class"]())
    loop._debug = state["debug"]
    loop._stopping = state["stopping"]
    loop._default_executor = state["default_executor"]
    loop._task_factory = state["task_factory"]
    loop._exception_handler = state["exception_handler"]
    for agen in state["asyncgens"]:
        loop._asyncgens.add(agen)
    loop._asyncgens_shutdown_called = state["asyncgens_shutdown_called"]
    loop._executor_shutdown_called = state["executor_shutdown_called"]
    net.settings.after_load.append(lambda: _register_transports(loop))
    if state["closed"]:
        loop.close()
    return loop


def _register_transports(loop: Any) -> None:
    """Once everything is loaded: each transport watched by the loop's selector is the loop's
    transport of its descriptor again, and one whose socket did not get its old number back
    (net.py) learns the new one (it adds and removes its reader and writer by number)."""
    import asyncio.selector_events as se
    for key in list(loop._selector.get_map().values()):
        handles = key.data if isinstance(key.data, tuple) else ()
        for handle in handles:
            transport = getattr(getattr(handle, "_callback", None), "__self__", None)
            if isinstance(transport, se._SelectorTransport) and transport._sock is not None:
                transport._sock_fd = transport._sock.fileno()
                loop._transports[transport._sock_fd] = transport


def _restore_signal_handlers(loop: Any, handlers: dict) -> None:
    """loop.add_signal_handler's work again: the handles, Python's no-op handler for each signal
    (the handle runs in the loop), and the loop's self-pipe as the signal wake-up descriptor."""
    import signal
    import asyncio.unix_events as ue
    try:
        signal.set_wakeup_fd(loop._csock.fileno())
    except (ValueError, OSError) as e:
        raise TypeError(f"the event loop's signal handlers cannot be set again here: {e}") from None
    for sig, handle in handlers.items():
        loop._signal_handlers[sig] = handle
        signal.signal(sig, ue._sighandler_noop)
        signal.siginterrupt(sig, False)


def _save_asend(aw: Any) -> Tuple:
    """`agen.__anext__()` awaited by a suspended coroutine: made again as agen.asend(value); a
    started one continues the generator where it is suspended (its first send passes the same
    value the coroutine would: None from the task's step)."""
    from .. import _engine
    agen, sendval, state = _engine.asend_parts(aw)
    if state == 2:
        raise TypeError("it has already finished")
    return (agen, sendval)


def _load_asend(state: Tuple) -> Any:
    # agen.asend is called: agen must be an async generator (its asend is the C method)
    if type(state) is not tuple or len(state) != 2 or type(state[0]) is not _ASYNC_GENERATOR:
        raise TypeError("an asend awaitable's state is not (async generator, value)")
    agen, sendval = state
    return agen.asend(sendval)


def _save_asyncgen_hooks(hooks: Any) -> Tuple:
    return tuple(hooks)


async def _agen_for_type() -> Any:
    yield None
_ASYNC_GENERATOR = type(_agen_for_type())


def _load_asyncgen_hooks(values: Tuple) -> Any:
    if type(values) is not tuple or len(values) != 2:
        raise TypeError("async generator hooks are not (firstiter, finalizer)")
    return type(sys.get_asyncgen_hooks())(values)


def _save_policy(policy: Any) -> Tuple:
    return (type(policy),)


def _load_policy(state: Tuple) -> Any:
    """asyncio's event loop policy of this process, of the saved class (its per-thread loops are
    set again with the running loops)."""
    from asyncio import events
    # The class is called: only an event loop policy class.
    if type(state) is not tuple or len(state) != 1 or not isinstance(state[0], type) \
            or not issubclass(state[0], events.AbstractEventLoopPolicy):
        raise TypeError("an event loop policy's state is not (a policy class,)")
    if type(events._event_loop_policy) is not state[0]:
        events._event_loop_policy = state[0]()
    return events._event_loop_policy


def _save_asyncio_events_module(module: Any) -> Any:
    # The event loop policy: its class (its per-thread loops are set again with the running loops,
    # stasis/program/restart.py restore_running_loops).
    policy = module._event_loop_policy
    return None if policy is None else type(policy)


def _load_asyncio_events_module(module: Any, policy_class: Any) -> None:
    if policy_class is not None and type(module._event_loop_policy) is not policy_class:
        module._event_loop_policy = policy_class()


def _save_base_events_module(module: Any) -> list:
    """[(loop, ready handles, [(scheduled handle, seconds left)], selector registrations, signal
    handlers)] of every event loop alive. Saved apart from the loops (see _save_event_loop): by the
    time these handles are written, each loop is written already, so a handle's reference to its
    loop is a plain back-reference. The registrations are net.py's (the loop's self-pipe left out:
    the new loop has its own)."""
    import gc
    from . import net
    out = []
    for loop in gc.get_objects():
        if isinstance(loop, module.BaseEventLoop) and not loop.is_closed():
            now = loop.time()
            selector = getattr(loop, "_selector", None)
            keys = net.save_selector(selector, is_self_pipe_key)["keys"] if selector is not None else []
            out.append((loop, list(loop._ready), [(h, h._when - now) for h in loop._scheduled], keys,
                        dict(getattr(loop, "_signal_handlers", {}))))
    return out


def _load_base_events_module(module: Any, loops: list) -> None:
    from . import net
    for loop, ready, scheduled, *rest in loops:
        loop._ready.extend(ready)
        now = loop.time()
        for handle, delay in scheduled:
            handle._when = now + delay
            heapq.heappush(loop._scheduled, handle)
        if rest:
            keys, signal_handlers = rest
            net.register_keys(loop._selector, keys)
            if signal_handlers:
                _restore_signal_handlers(loop, signal_handlers)


def _save_asyncio_tasks_module(module: Any) -> tuple:
    # The tasks (asyncio.all_tasks()), and the task each running loop is in the middle of: a
    # thread suspended inside Task.__step, after its _enter_task(), continues there on resume and
    # leaves the task with _leave_task(), which must find it current.
    return list(module._all_tasks), dict(module._current_tasks)


def _load_asyncio_tasks_module(module: Any, state: Any) -> None:
    tasks, current = state if isinstance(state, tuple) else (state, {})
    for task in tasks:
        module._register_task(task)
    module._current_tasks.update(current)


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """contextvars and async generators: types of every process."""
    h: Dict[type, Tuple[str, Callable, Callable]] = {
        contextvars.Context: ("stasis.context", _save_context, _load_context),
        contextvars.ContextVar: ("stasis.context_var", _save_context_var, _load_context_var),
    }

    async def _agen() -> Any:
        yield None
    h[type(_agen().__anext__())] = ("stasis.asend", _save_asend, _load_asend)
    h[type(sys.get_asyncgen_hooks())] = ("stasis.asyncgen_hooks", _save_asyncgen_hooks, _load_asyncgen_hooks)
    return h


def asyncio_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """The event loop and the policy: registered once the program imported asyncio (its selector's
    handler is net.py's, registered with selectors)."""
    import asyncio.trsock as trsock
    import asyncio.unix_events as ue
    return {ue._UnixSelectorEventLoop: ("stasis.event_loop", _save_event_loop, _load_event_loop),
            ue._UnixDefaultEventLoopPolicy: ("stasis.event_loop_policy", _save_policy, _load_policy),
            trsock.TransportSocket: ("stasis.transport_socket", _save_transport_socket, _load_transport_socket)}


def _save_transport_socket(ts: Any) -> Any:
    return ts._sock  # the socket a transport or server lends out (transport.get_extra_info("socket"))


def _load_transport_socket(sock: Any) -> Any:
    import asyncio.trsock as trsock
    return trsock.TransportSocket(sock)


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"asyncio.tasks": (_save_asyncio_tasks_module, _load_asyncio_tasks_module),
            "asyncio.base_events": (_save_base_events_module, _load_base_events_module),
            "asyncio.events": (_save_asyncio_events_module, _load_asyncio_events_module)}
