"""The import system's state: which modules the program has imported (sys.modules).

A resumed program gets again, on demand, the modules its heap refers to; a module it imported
and no captured object names is another matter. `import pkg.sub` binds only `pkg`; `sub` is an
attribute of `pkg` because the import set it, and `pkg` comes back from a fresh import without
it (`__import__("pkg.sub")` followed by `getattr(pkg, "sub")`, as unittest's loader does, failed
on resume with "module 'pkg' has no attribute 'sub'"). So the modules in sys.modules are kept,
in import order, as the registered state of module `sys`, and imported again before any other
library state is put back (a module's import may change another's registered state, e.g. add a
logging handler, which the later restore of that state then replaces by the snapshot's).

Not kept: `__main__`, Stasis's own modules, modules named under another name than their own
(`os.path`, aliases a program puts in sys.modules) and modules without an import spec (made with
types.ModuleType): an import by that name would not give them back. Nor are the modules that
loading never imports (their import has effects of its own: `this`, `antigravity`, a `__main__`
submodule; core/allowlist.h). The program's own modules
exist already when this state is restored, so they are not imported. A module that cannot be
imported again is named in a warning and the program goes on without it, as it would on a
machine without it had it not imported it.
"""
from __future__ import annotations

import importlib
import re
import sys
from types import ModuleType
from typing import Any, Callable, Dict, List, Tuple

# Restored before every other registered library state (program/process_state.py).
MODULE = "sys"

# Dotted names of non-empty parts; a part may be any text without a NUL or a separator
# (`_sysconfigdata__x86_64-linux-gnu` is a module).
_NAME = re.compile(r"[^./\\\0]+(\.[^./\\\0]+)*\Z")
_SKIPPED = ("__main__", "__mp_main__")


def _kept(name: object, module: object) -> bool:
    return (isinstance(name, str) and isinstance(module, ModuleType) and name not in _SKIPPED
            and name != "stasis" and not name.startswith(("stasis.", "__stasis_"))
            and getattr(module, "__name__", None) == name and getattr(module, "__spec__", None) is not None)


def _save_sys_module(module: Any) -> List[str]:
    return [name for name, mod in list(sys.modules.items()) if _kept(name, mod)]


def _load_sys_module(module: Any, names: Any) -> None:
    from ..errors import CorruptSnapshotError
    if not isinstance(names, list) or not all(type(n) is str and _NAME.match(n) for n in names):
        raise CorruptSnapshotError("the snapshot's list of imported modules holds something that is not a "
                                   "module name")
    from .. import _engine
    for name in names:
        if name in sys.modules or _engine.import_refusal(name, True):
            continue  # refused: a module whose import has effects of its own (core/allowlist.h)
        try:
            importlib.import_module(name)
        except Exception as e:  # any failure of a module's import is reported the same way
            sys.stderr.write(f"stasis: warning: module {name}, which the program had imported, cannot be "
                             f"imported again ({type(e).__name__}: {e}); the program goes on without it\n")
            sys.stderr.flush()


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {MODULE: (_save_sys_module, _load_sys_module)}
