"""Values of library types made again from their parameters: struct.Struct (its format),
functools.lru_cache wrappers (around the same function), the decimal module's context."""
from __future__ import annotations

import _struct
import functools
import threading
from typing import Any, Callable, Dict, Tuple

# ---- struct.Struct: made again from its format -------------------------------------------------


def _save_struct(st: Any) -> str:
    return st.format


def _load_struct(fmt: str) -> Any:
    if type(fmt) not in (str, bytes):
        raise TypeError("a Struct's format is not a str")
    import struct
    return struct.Struct(fmt)


# ---- functools.lru_cache wrappers: made again around the same function (the cache starts empty) --


def _save_lru_cache(wrapper: Any) -> Tuple:
    params = wrapper.cache_parameters()
    extra = {k: v for k, v in vars(wrapper).items() if k != "__wrapped__"}
    return (wrapper.__wrapped__, params["maxsize"], params["typed"], extra)


def _load_lru_cache(state: Tuple) -> Any:
    # Checked before anything is made: lru_cache treats a callable maxsize as the function, and
    # the extra attributes are copied with dict.update (an object that is not a dict would have
    # its own keys() called).
    if type(state) is not tuple or len(state) != 4:
        raise TypeError("an lru_cache wrapper's state is not (function, maxsize, typed, attributes)")
    func, maxsize, typed, extra = state
    if not callable(func) or not (maxsize is None or type(maxsize) is int) or type(typed) is not bool \
            or type(extra) is not dict or not all(type(k) is str for k in extra):
        raise TypeError("an lru_cache wrapper's state is not (function, maxsize, typed, attributes)")
    wrapper = functools.lru_cache(maxsize=maxsize, typed=typed)(func)
    vars(wrapper).update(extra)
    return wrapper


def _save_decimal_module(module: Any) -> Any:
    """The main thread's decimal context (precision, rounding, traps...): a context variable of
    that thread, read from whichever thread writes the snapshot."""
    from .. import _engine
    context = _engine.thread_context_value(threading.main_thread().ident, "decimal_context")
    return context if context is not None else module.getcontext()


def _load_decimal_module(module: Any, context: Any) -> None:
    module.setcontext(context)


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    return {
        functools._lru_cache_wrapper: ("stasis.lru_cache", _save_lru_cache, _load_lru_cache),
        _struct.Struct: ("stasis.struct", _save_struct, _load_struct),
    }


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"decimal": (_save_decimal_module, _load_decimal_module)}
