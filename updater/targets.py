"""Resolving update targets: "pkg.mod.func", "pkg.mod.Class.method", "pkg.mod.Class" (or the
object itself) to the attribute that holds them and the function whose code gets replaced."""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any, List, Optional

from .errors import UpdateRefusedError

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()


@dataclass
class Target:
    name: str                 # dotted, as given (or derived from the object)
    owner: Any                # module or class holding the attribute; None for a bare object
    attr: Optional[str]       # attribute name in owner
    value: Any                # current value (MISSING when the attribute does not exist yet)


def resolve(target: Any, *, allow_missing: bool = False) -> Target:
    """Finds `target` in the loaded modules. The longest loaded module prefix wins; modules are
    never imported by an update."""
    if not isinstance(target, str):
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        return Target(name, None, None, target)
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:cut])
        mod = sys.modules.get(modname)
        if mod is None:
            continue
        owner: Any = mod
        rest = parts[cut:]
        for i, part in enumerate(rest[:-1]):
            try:
                owner = getattr(owner, part)
            except AttributeError:
                raise UpdateRefusedError(f"{target}: {'.'.join(parts[:cut + i])} has no attribute {part!r}") from None
        last = rest[-1]
        value = owner.__dict__.get(last, MISSING) if isinstance(owner, type) else getattr(owner, last, MISSING)
        if value is MISSING and not allow_missing:
            raise UpdateRefusedError(f"{target}: {'.'.join(parts[:-1])} has no attribute {last!r}")
        return Target(target, owner, last, value)
    raise UpdateRefusedError(f"{target}: no loaded module is a prefix of this name "
                             f"(updates never import modules; is the program running it?)")


def innermost_function(obj: Any) -> Optional[types.FunctionType]:
    """The plain function behind staticmethod/classmethod and decorators (following __wrapped__),
    or None when obj is not function-like."""
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif isinstance(obj, types.MethodType):
            obj = obj.__func__
        elif hasattr(obj, "__wrapped__") and not isinstance(obj, type):
            obj = obj.__wrapped__
        else:
            break
    return obj if isinstance(obj, types.FunctionType) else None


def result_caches(obj: Any) -> List[Any]:
    """The functools.lru_cache/cache wrappers on the way from obj to its innermost function. Their
    results were computed by the code an update replaces, so the update empties them when it is
    applied (a cache kept across a bug fix would go on returning the bug's results)."""
    found, seen = [], set()
    while id(obj) not in seen:
        seen.add(id(obj))
        if callable(getattr(obj, "cache_clear", None)) and callable(getattr(obj, "cache_info", None)):
            found.append(obj)
        if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            obj = obj.__func__
        elif hasattr(obj, "__wrapped__") and not isinstance(obj, type):
            obj = obj.__wrapped__
        else:
            break
    return found


def describe_code(code: types.CodeType) -> str:
    return f"{code.co_qualname} ({code.co_filename}:{code.co_firstlineno})"
