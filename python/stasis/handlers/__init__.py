"""Built-in handlers (stasis.register) for library types that pickle cannot capture, and the
module-state registrations (stasis.register_module_state) for library modules, one module per
concern. Each save function returns plain data; each load function rebuilds the object from it.
Loading calls only these functions, by their key.

Types of every process are registered on first use of stasis (`builtin_handlers`); the types of
a library module, once the program has imported that module (`MODULE_HANDLERS`): a snapshot
never needs them otherwise, and importing stasis imports none of them.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from . import (asyncio_loop, csv_files, files, imports, logging_state, net, numpy_arrays, pandas_frames, process,
               sqlite, threads, values, weak)

Handlers = Dict[type, Tuple[str, Callable, Callable]]


def builtin_handlers() -> Handlers:
    """{type: (key, save, load)} registered by stasis on first use."""
    h: Handlers = {}
    for concern in (threads, weak, values, asyncio_loop, files):
        h.update(concern.handlers())
    return h


# Handlers for the types of a library module, registered once the program has imported that
# module. A resumed program imports the ones its snapshot was written with before loading it
# (stasis/program/resume.py).
MODULE_HANDLERS: Dict[str, Callable[[], Handlers]] = {
    "subprocess": process.subprocess_handlers,
    "logging": logging_state.logging_handlers,
    "asyncio": asyncio_loop.asyncio_handlers,
    "numpy": numpy_arrays.numpy_handlers,
    "pandas": pandas_frames.pandas_handlers,
    "pytz": pandas_frames.pytz_handlers,
    "sqlite3": sqlite.sqlite_handlers,
    "csv": csv_files.csv_handlers,
    "json": values.json_handlers,
    "xml.etree.ElementTree": values.xml_handlers,
    "socket": net.socket_handlers,
    "selectors": net.selector_handlers,
    "socketserver": net.socketserver_handlers,
}

# The module of MODULE_HANDLERS each of their keys belongs to, for loading a snapshot in a process
# that has not imported that module (stasis.load of numpy arrays in a fresh interpreter): the
# module is then imported, as pickle imports a class's module, and its handlers registered.
# tests/handlers checks this table against what MODULE_HANDLERS register.
MODULE_OF_KEY: Dict[str, str] = {
    **{f"stasis.csv.{k}": "csv" for k in ("dialect", "reader", "writer")},
    **{f"stasis.{k}": "asyncio" for k in ("event_loop", "event_loop_policy", "transport_socket")},
    "stasis.json_scanner": "json",
    "stasis.logger": "logging",
    **{f"stasis.numpy.{k}": "numpy" for k in ("bit_generator", "dtype", "generator", "ndarray", "random_state",
                                              "scalar", "seed_sequence", "ufunc")},
    **{f"stasis.pandas.{k}": "pandas" for k in ("block_manager", "block", "block_placement", "array", "index", "timestamp",
                                                "timedelta", "period_dtype", "offset")},
    "stasis.pytz.zone": "pytz",
    "stasis.popen": "subprocess",
    "stasis.selector": "selectors",
    "stasis.socket": "socket",
    "stasis.socket_io": "socket",
    "stasis.socket_writer": "socketserver",
    **{f"stasis.sqlite3.{k}": "sqlite3" for k in ("connection", "cursor", "row")},
    "stasis.xml_parser": "xml.etree.ElementTree",
}


def prepare_program_process() -> None:
    """What `stasis run` and `stasis resume` set up before the program's code runs or is
    rebuilt, so that library objects keep state that could not be read back later:
    sqlite3.connect makes connections that record their functions, collations and cursors'
    queries (handlers/sqlite.py); functools.lru_cache makes wrappers whose cache is ordinary
    heap (handlers/values.py)."""
    sqlite.record_connections()
    values.pure_python_lru_cache()


def _save_random_module(module: Any) -> Any:
    return module._inst.getstate()


def _load_random_module(module: Any, state: Any) -> None:
    module._inst.setstate(state)


def builtin_module_states() -> Dict[str, Tuple[Callable, Callable]]:
    """{module name: (save(module) -> state, load(module, state))}: library modules keep only
    registered state."""
    states: Dict[str, Tuple[Callable, Callable]] = {"random": (_save_random_module, _load_random_module)}
    for concern in (imports, threads, values, asyncio_loop, logging_state, numpy_arrays, sqlite, net):
        states.update(concern.module_states())
    return states
