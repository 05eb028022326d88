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
