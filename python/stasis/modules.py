"""Which modules are the program's own and which are libraries, which module attributes a snapshot
drops, and the module state kept across a snapshot: decided here, once, for stasis.module_state
and for whole-program snapshots (stasis/program).

- A *library* module has its source under one of the interpreter's library directories (every
  sysconfig scheme's stdlib/platstdlib/purelib/platlib, for this environment and its base: Debian's
  dist-packages among them) or has no source file (builtin, frozen). Every other module is a *user*
  module. A library module keeps only the state registered for it (register_module_state; random's
  generator, logging's configuration and others are built in, stasis/handlers); a user module keeps
  all its globals but the import machinery's.
- A program's *own* modules (captured by value in its snapshot) are __main__ and the modules whose
  source lies under the program's roots (the script's directory, or the -m package's).
"""
from __future__ import annotations

import functools
import os
import sys
import sysconfig
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, Tuple

from .errors import IncompatibleSnapshotError

# Attributes the import machinery gives a module: rebuilt, never captured.
IMPORT_MACHINERY = ("__builtins__", "__loader__", "__spec__", "__cached__")
# Attributes naming the module: kept by a program snapshot (its own modules are created empty on
# resume and get them back), dropped by module_state (applied to a module imported again).
MODULE_IDENTITY = ("__name__", "__file__", "__package__", "__path__", "__doc__")


@functools.lru_cache(maxsize=1)
def library_paths() -> Tuple[str, ...]:
    """The interpreter's library directories, resolved, each ending with a separator."""
    paths = set()
    bases = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for scheme in sysconfig.get_scheme_names():
        if scheme.startswith(("nt", "osx")):
            continue  # this is a POSIX system: those schemes name no directory of it
        for base in bases:
            try:
                found = sysconfig.get_paths(scheme, vars={"base": base, "platbase": base,
                                                          "installed_base": base, "installed_platbase": base})
            except KeyError:
                continue
            for key in ("stdlib", "platstdlib", "purelib", "platlib"):
                if key in found:
                    paths.add(os.path.join(os.path.realpath(found[key]), ""))
    return tuple(sorted(paths))


def source_path(module: ModuleType) -> str | None:
    origin = getattr(module, "__file__", None)
    return os.path.realpath(origin) if isinstance(origin, str) else None


def is_library_module(module: ModuleType) -> bool:
    path = source_path(module)
    return path is None or any(path.startswith(lib) for lib in library_paths())


def program_modules(roots: Iterable[str]) -> Dict[str, ModuleType]:
    """The program's own modules: __main__ and the modules under its roots (Stasis's excepted)."""
    roots = tuple(roots)
    out = {"__main__": sys.modules["__main__"]}
    for name, mod in list(sys.modules.items()):
        if name == "__main__" or name.startswith("stasis") or not isinstance(mod, ModuleType):
            continue
        path = source_path(mod)
        if path is not None and any(path.startswith(r) for r in roots):
            out[name] = mod
    return out


def program_globals(module: ModuleType) -> dict:
    """What a program snapshot keeps of one of the program's own modules."""
    return {k: v for k, v in vars(module).items() if k not in IMPORT_MACHINERY}


# ---- module state (stasis.module_state / restore_module_state / register_module_state) ---------

_registered: Dict[str, Tuple[Callable[[ModuleType], Any], Callable[[ModuleType, Any], None]]] = {}


def register_state(name: str, save: Callable[[ModuleType], Any], load: Callable[[ModuleType, Any], None]) -> None:
    _registered[name] = (save, load)


def registered_names() -> Iterable[str]:
    return _registered.keys()


def module_state(module: ModuleType) -> Tuple[str, str, Any]:
    """("user", name, {global: value}) with every global of a user module but its metadata, or
    ("library", name, registered state or None)."""
    if not isinstance(module, ModuleType):
        raise TypeError("a module is required")
    name = module.__name__
    if not is_library_module(module):
        dropped = IMPORT_MACHINERY + MODULE_IDENTITY
        return ("user", name, {k: v for k, v in vars(module).items() if k not in dropped})
    entry = _registered.get(name)
    return ("library", name, entry[0](module) if entry else None)


def restore_module_state(module: ModuleType, state: Tuple[str, str, Any]) -> None:
    """Applies module_state() output to the module imported again."""
    if not isinstance(module, ModuleType):
        raise TypeError("a module is required")
    kind, name, values = state
    if module.__name__ != name:
        raise ValueError(f"state of module {name!r} applied to module {module.__name__!r}")
    if kind == "user":
        if not isinstance(values, dict):
            raise TypeError("user module state must be a dict")
        vars(module).update(values)
    elif values is not None:
        entry = _registered.get(name)
        if entry is None:
            raise IncompatibleSnapshotError(f"the snapshot holds state of library module {name!r}, and no "
                                            "module state is registered for it here (register_module_state)")
        entry[1](module, values)
