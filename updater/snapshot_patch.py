"""Patching a suspended program: `apply_patches(state, patches)` applies patches to a program
snapshot that is loaded in this process (stasis/program/resume.py load_program) and whose frames
are records, not running code — for `stasis patch` (which then writes the snapshot again),
`stasis resume --patch` (which then rebuilds the stacks) and `stasis restart PID --patch`.

A patch is a list of files, applied in order:
- an *update module* (`--update FILE`): run exactly as by `stasis ctl PID apply` (stasis.update),
  compiled resumably, applied at once (no safe point to wait for: nothing runs); it then stays
  with the program as a module of its own, since what it defines may be in the heap;
- a *new source file* of one of the program's own modules (`--source PATH[=MODULE]`): diffed
  against the source the snapshot recorded (source_diff.py). Changed functions and methods are
  redefined (identity kept), new ones added, removed ones removed where nothing uses them;
  module-level statements binding new names run; classes are updated in place.
Then every frame on the program's stacks whose code changed is moved to the new code
(frame_map.py), or the whole patch is refused (UpdateRefusedError, nothing written) naming every
frame that cannot be moved and what `stasis.update.map_frame(...)` could say.
"""
from __future__ import annotations

import ast
import gc
import hashlib
import os
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..compiler_hooks.rewriter import rewrite_module
from ..errors import SnapshotIOError
from ..program.layout import (PATCH_MODULE_PREFIX, ModuleSource, PatchFile, PatchRecord, ProgramState)
from . import api
from . import frame_map as fm
from . import source_diff as sd
from .errors import UpdateError, UpdateRefusedError
from .layers import Update, layers
from .targets import MISSING, innermost_function, result_caches


@dataclass
class PatchSpec:
    """One file of a patch."""
    kind: str                       # "source" or "update"
    path: str                       # absolute
    data: bytes
    module: Optional[str] = None    # a source's module, when given as PATH=MODULE

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_spec(kind: str, arg: str) -> PatchSpec:
    """A PatchSpec from a command-line argument (`PATH` or, for a source, `PATH=MODULE`), the path
    made absolute now (loading a snapshot changes to the program's directory)."""
    path, module = arg, None
    if kind in ("source", "auto") and "=" in arg and not os.path.exists(arg):
        path, module = arg.rsplit("=", 1)
        kind = "source"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SnapshotIOError(f"cannot read the patch file {path}: {e.strerror}") from None
    return PatchSpec(kind, os.path.abspath(path), data, module or None)


def apply_patches(state: ProgramState, patches: Sequence[PatchSpec], by: str) -> PatchRecord:
    """Applies `patches` in order to the loaded program `state` (its modules filled, none of its
    frames rebuilt), moves its frames to the new code, and appends the patch to its history.
    UpdateRefusedError (nothing of the program runs after it; the snapshot file is untouched)
    names every frame that cannot continue and every other reason."""
    ctx = _Patching(state)
    for spec in patches:
        if spec.kind == "auto":  # resume --patch FILE: a source when it names a program module
            try:
                ctx.resolve_module(spec)
                spec.kind = "source"
            except UpdateRefusedError:
                spec.kind = "update"
        if spec.kind == "source":
            ctx.apply_source(spec)
        elif spec.kind == "update":
            ctx.apply_update(spec)
        else:
            raise UpdateError(f"unknown kind of patch {spec.kind!r}")
    ctx.move_frames()
    from ..modules import program_globals
    for name in state.modules:  # the modules' dicts are what patches changed (new names, removals)
        if name in sys.modules:
            state.modules[name] = program_globals(sys.modules[name])
    record = PatchRecord(applied_at=time.time(), by=by,
                         files=[PatchFile(s.kind, s.path, ctx.module_of.get(id(s)), s.sha256) for s in patches],
                         changes=ctx.notes, frames=ctx.moved)
    state.sources = ctx.sources
    state.patches.append(record)
    return record


class _Patching:
    def __init__(self, state: ProgramState) -> None:
        self.state = state
        self.sources: Dict[str, ModuleSource] = dict(state.sources)
        self.changes: List[fm.CodeChange] = []
        self.rules: List[fm.FrameRule] = []
        self.notes: List[str] = []
        self.moved: List[str] = []
        self.refusals: List[str] = []
        self.deleted_running: List[Tuple[Any, str]] = []   # (frame record, why refused)
        self.module_of: Dict[int, str] = {}
        self._parsed: Dict[Tuple[str, str], fm.SourceCode] = {}

    # --- sources --------------------------------------------------------------------------------

    def source_code(self, path: str, data: bytes) -> fm.SourceCode:
        key = (path, hashlib.sha256(data).hexdigest())
        if key not in self._parsed:
            self._parsed[key] = fm.SourceCode.parse(data, path)
        return self._parsed[key]

    def source_of(self, code: types.CodeType) -> Optional[fm.SourceCode]:
        for name, src in self.sources.items():
            if src.path == code.co_filename:
                return self.source_code(src.path, src.source)
        return None

    def module_name_of(self, code: types.CodeType) -> str:
        for name, src in self.sources.items():
            if src.path == code.co_filename:
                return name
        for name in self.state.modules:
            mod = sys.modules.get(name)
            if getattr(mod, "__file__", None) == code.co_filename:
                return name
        return "?"

    def resolve_module(self, spec: PatchSpec) -> str:
        """The program module a new source file replaces: named (PATH=MODULE), else the one whose
        path relative to the script's directory ends the given path (__main__ is the script)."""
        own = {name: getattr(sys.modules.get(name), "__file__", None) for name in self.state.modules}
        own = {n: f for n, f in own.items() if isinstance(f, str) and not n.startswith(PATCH_MODULE_PREFIX)}
        listing = ", ".join(f"{os.path.basename(f)} ({n})" for n, f in sorted(own.items()))
        if spec.module is not None:
            if spec.module not in own:
                raise UpdateRefusedError(f"--source {spec.path}={spec.module}: the program has no module "
                                         f"{spec.module!r} (its modules: {listing})")
            return spec.module
        root = self.state.roots[0] if self.state.roots else os.path.dirname(own.get("__main__", "") or "")
        given = os.path.realpath(spec.path)
        exact = [n for n, f in own.items() if os.path.realpath(f) == given]
        if exact:
            return exact[0]
        parts = given.split(os.sep)
        found = []
        for n, f in own.items():
            rel = os.path.relpath(os.path.realpath(f), root).split(os.sep)
            if parts[-len(rel):] == rel:
                found.append(n)
        if len(found) == 1:
            return found[0]
        if not found:
            raise UpdateRefusedError(f"--source {spec.path}: no module of the program has that file name relative to "
                                     f"its directory (its modules: {listing}); name it: --source PATH=MODULE")
        raise UpdateRefusedError(f"--source {spec.path}: several modules match ({', '.join(sorted(found))}); name "
                                 "one: --source PATH=MODULE")

    # --- a new source file ------------------------------------------------------------------------

    def apply_source(self, spec: PatchSpec) -> None:
        name = self.resolve_module(spec)
        self.module_of[id(spec)] = name
        mod = sys.modules[name]
        old = self.sources.get(name)
        if old is None:
            raise UpdateRefusedError(f"--source {spec.path}: the snapshot does not hold the source module {name} ran "
                                     "from (written by an older Stasis), so there is nothing to compare it with; "
                                     "give the change as an update module (--update) instead")
        filename = old.path
        try:
            new_src = self.source_code(filename, spec.data)
            new_module_code = rewrite_module(spec.data, filename)[0]
        except SyntaxError as e:
            raise UpdateRefusedError(f"--source {spec.path}: line {e.lineno}: {e.msg}") from None
        old_src = self.source_code(filename, old.source)
        old_module_code = rewrite_module(old.source, filename)[0]
        funcs, gens = _heap_functions(filename)
        from ..program import crash
        running = list(funcs) + ([self.state.base_code] if name == "__main__" else [])
        if any(crash.is_instrumented(c) for c in running):
            # The program runs with --snapshot-on-crash handlers: so does its new code.
            old_module_code, new_module_code = crash.instrument(old_module_code), crash.instrument(new_module_code)
        old_codes = sd.codes_by_definition(old_module_code, old_src.defs)
        new_codes = sd.codes_by_definition(new_module_code, new_src.defs)
        label = (lambda q: f"{name}.{q}")

        u = layers.new_update(f"source {spec.path}")
        u.snapshot = True
        nested: List[Tuple[types.CodeType, types.CodeType, str]] = []
        refused: List[str] = []
        try:
            # Definitions in both versions whose code differs: redefined in place.
            plans = []
            for q, od in old_src.defs.items():
                nd = new_src.defs.get(q)
                oc, nc = old_codes.get(q), new_codes.get(q)
                if nd is None or oc is None or nc is None or od.is_class != nd.is_class:
                    continue
                # A function whose code is the same may still have new default values (they are
                # evaluated by the code around it, not part of its own).
                if oc == nc and (od.is_class or q == "<module>" or not _defaults_differ(od.node, nd.node)):
                    continue
                if oc != nc:
                    live = _live_code(oc, funcs, self.state, q, name)
                    self.changes.append(fm.CodeChange(live, nc, old_src, new_src, label(q)))
                    kept = [g for g in gens if _generator_code(g) == oc]
                    if kept:
                        what = "coroutine" if isinstance(kept[0], types.CoroutineType) else \
                            "async generator" if isinstance(kept[0], types.AsyncGeneratorType) else "generator"
                        self.notes.append(f"a suspended {what} of {label(q)} keeps its old code until it finishes")
                if od.is_class or q == "<module>":
                    continue
                if sd.dump(ast.Module(od.node.decorator_list, [])) != sd.dump(ast.Module(nd.node.decorator_list, [])):
                    refused.append(f"the decorators of {label(q)} changed (a patch replaces a function's code, not its "
                                   "decoration)")
                    continue
                fns = funcs.get(oc, [])
                if "<locals>" in q:
                    if oc.co_freevars != nc.co_freevars:
                        refused.append(f"{label(q)} uses other variables of its enclosing function in the new source "
                                       f"({list(nc.co_freevars)} instead of {list(oc.co_freevars)})")
                    nested.append((oc, nc, label(q)))
                    continue
                if fns:
                    plans.append((q, od, nd, fns[0], nc))
            # Classes in both: their header must be the same; new members are added.
            for q, od in old_src.defs.items():
                nd = new_src.defs.get(q)
                if nd is None or not od.is_class or not nd.is_class:
                    continue
                head = lambda c: sd.dump(ast.Module([*c.bases, *[k.value for k in c.keywords], *c.decorator_list], []))
                if head(od.node) != head(nd.node) or [k.arg for k in od.node.keywords] != [k.arg for k in nd.node.keywords]:
                    refused.append(f"the bases, metaclass or decorators of class {label(q)} changed (a class is "
                                   "updated in place: its instances keep their type)")
            if refused:
                raise UpdateRefusedError(f"--source {spec.path}: " + "; ".join(refused))

            # New module-level names first (new code may read them), then the class members, then
            # the redefinitions, planned into one update applied at once.
            self._run_new_statements(mod, old_src, new_src, new_module_code, filename, spec)
            for q, od in old_src.defs.items():
                nd = new_src.defs.get(q)
                if nd is not None and od.is_class and nd.is_class:
                    self._update_class(u, mod, q, od, nd, new_src, new_codes, funcs, gens, filename, label)
            for q, od, nd, fn, nc in plans:
                defaults, kwdefaults = _defaults(od.node, nd.node, fn, mod, _owner_namespace(mod, q), filename)
                new_fn = types.FunctionType(nc, mod.__dict__, nc.co_name, defaults,
                                            tuple(types.CellType() for _ in nc.co_freevars) or None)
                new_fn.__kwdefaults__ = kwdefaults
                layers.plan_redefine(u, label(q), fn, new_fn)
                u.caches.extend(result_caches(_resolve_qualname(mod, q)))
                u.actions.append(f"redefine {label(q)}" if sd.dump(od.node) != sd.dump(nd.node)
                                 else f"renumber {label(q)} (unchanged; its lines moved)")
            self._remove_deleted(u, mod, old_src, new_src, old_codes, funcs, gens, label)
            if u.groups or u.slots:
                layers.apply(u)
            else:
                layers.forget_plan(u)
        except BaseException:
            layers.forget_plan(u)
            raise
        # Nested functions (closures made earlier from the old code) get the new code, keeping
        # their own defaults and cells.
        for oc, nc, what in nested:
            for fn in funcs.get(oc, []):
                fn.__code__ = nc
            u.actions.append(f"redefine {what}")
        if name == "__main__" and old_codes.get("<module>") != new_codes.get("<module>"):
            self.state.base_code = new_codes["<module>"]
        self.notes += u.actions
        self.sources[name] = ModuleSource(filename, spec.data, hashlib.sha256(spec.data).hexdigest())

    def _run_new_statements(self, mod: types.ModuleType, old_src: fm.SourceCode, new_src: fm.SourceCode,
                            module_code: types.CodeType, filename: str, spec: PatchSpec) -> None:
        """Runs the module-level statements that are new in the new source (not in the old one) and
        bind only names the module does not have: definitions, assignments, imports. Nothing else of
        the module body runs — in particular not the program's own statements that have not run yet
        (a module whose body is on a stack: what comes after where it stands runs when it gets there)."""
        old_statements = {sd.dump(s) for s in old_src.tree.body}
        limit = self._module_resume_index(filename, old_src, new_src)
        for j, s in enumerate(new_src.tree.body):
            if limit is not None and j >= limit:
                break
            names = _bound_names(s)
            if not names or any(n in mod.__dict__ for n in names) or sd.dump(s) in old_statements:
                continue
            code = compile(ast.Module([s], []), filename, "exec", dont_inherit=True)
            try:
                exec(code, mod.__dict__)
            except BaseException as e:  # the program's code: reported, nothing applied
                raise UpdateError(f"--source {spec.path}: line {s.lineno} of the new source (binding "
                                  f"{', '.join(names)}) raised {type(e).__name__}: {e}") from None
            for n in names:
                _resumable_codes(mod.__dict__.get(n), module_code)
            self.notes.append(f"add {mod.__name__}.{', '.join(names)} (line {s.lineno})")

    def _module_resume_index(self, filename: str, old_src: fm.SourceCode, new_src: fm.SourceCode) -> Optional[int]:
        """Where in the new module body a frame running the module's body continues (the index of
        its top-level statement; at the start of a statement, of the statements inserted in front
        of it), or None when no stack runs the module's body."""
        where = []
        module_def = old_src.defs["<module>"]
        for t in self.state.threads:
            for r in t.frames:
                if r.code.co_filename != filename or r.code.co_name != "<module>":
                    continue
                at_start = False
                if r.row is not None:
                    steps = sd.parse_path(r.row[:-len(".enter")] if r.row.endswith(".enter") else r.row)
                else:
                    key, k = fm.CodeShape(r.code, module_def).statement_at(r.offset)
                    steps, at_start = list(key or ()), k == 0
                if not steps or steps[0][0] != "body" or steps[0][1] is None:
                    return 0
                pairs = sd.match_statements(old_src.tree.body, new_src.tree.body)
                j = pairs[steps[0][1]].new_index
                if j is None:
                    return 0    # its statement is gone: the frame is refused (move_frames)
                where.append(sd.inserted_before(pairs, j) if at_start else j)
        return min(where) if where else None

    def _update_class(self, u: Update, mod: types.ModuleType, q: str, od: sd.Definition, nd: sd.Definition,
                      new_src: fm.SourceCode, new_codes: Dict[str, types.CodeType], funcs: dict, gens: list,
                      filename: str, label) -> None:
        cls = _resolve_qualname(mod, q)
        if not isinstance(cls, type):
            self.notes.append(f"class {label(q)} is not bound in its module any more: not updated")
            return
        old_members = {n for s in od.node.body for n in _bound_names(s)}
        namespace = dict(cls.__dict__)
        for s in nd.node.body:
            names = _bound_names(s)
            if not names or any(n in old_members or n in cls.__dict__ for n in names):
                continue
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                code = new_codes.get(f"{q}.{s.name}")
                if code is None:
                    continue
                fn = types.FunctionType(code, mod.__dict__, s.name, None,
                                        tuple(types.CellType(cls) if v == "__class__" else types.CellType()
                                              for v in code.co_freevars) or None)
                defaults, kwdefaults = _defaults(None, s, None, mod, namespace, filename)
                fn.__defaults__, fn.__kwdefaults__ = defaults, kwdefaults
                fn.__qualname__ = f"{q}.{s.name}"
                value: Any = fn
                for dec in reversed(s.decorator_list):
                    value = _evaluate(dec, mod, namespace, filename)(value)
                layers.plan_attr(u, cls, s.name, value)
                namespace[s.name] = value
                u.actions.append(f"add {label(q)}.{s.name}")
            elif isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None:
                value = _evaluate(s.value, mod, namespace, filename)
                for n in names:
                    layers.plan_attr(u, cls, n, value)
                    namespace[n] = value
                u.actions.append(f"add {label(q)}.{', '.join(names)}")
        new_members = {n for s in nd.node.body for n in _bound_names(s)}
        for s in od.node.body:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name not in new_members:
                self._remove(u, cls, s.name, f"{label(q)}.{s.name}", funcs, gens)

    def _remove_deleted(self, u: Update, mod: types.ModuleType, old_src: fm.SourceCode, new_src: fm.SourceCode,
                        old_codes: dict, funcs: dict, gens: list, label) -> None:
        new_top = {n for s in new_src.tree.body for n in _bound_names(s)}
        for s in old_src.tree.body:
            if isinstance(s, sd.DEFS) and s.name not in new_top:
                self._remove(u, mod, s.name, label(s.name), funcs, gens)

    def _remove(self, u: Update, owner: Any, attr: str, what: str, funcs: dict, gens: list) -> None:
        """Removes a function or class deleted from the source, unless something still uses it:
        a frame on a stack (refused), a suspended generator or another reference (kept)."""
        value = owner.__dict__.get(attr, MISSING)
        if value is MISSING:
            return
        fn = innermost_function(value)
        codes = {id(fn.__code__)} if fn is not None else set()
        if isinstance(value, type):
            codes = {id(c) for c in _class_codes(value)}
            if _has_instances(value):
                self.notes.append(f"keep {what} (deleted from the source): instances of it exist")
                return
        running = [(t, r) for t in self.state.threads for r in t.frames if id(r.code) in codes]
        for t, r in running:  # refused unless a crash's restarted caller drops the frame (move_frames)
            self.deleted_running.append((r, f"thread {t.name!r}: {what if fn is not None else r.code.co_qualname} "
                                            f"(old line {fm.old_line(r)}): its function was deleted from the source "
                                            "and is on the stack"))
        if running:
            return
        if any(id(_generator_code(g)) in codes for g in gens):
            self.notes.append(f"keep {what} (deleted from the source): a suspended generator runs it")
            return
        # Not uses: the module or class namespace itself, the lists of functions found here, and the
        # loaded state's copies of the modules' globals (replaced by the patched ones at the end).
        ours = {id(owner.__dict__)} | {id(v) for v in funcs.values()} | {id(g) for g in self.state.modules.values()}
        refs = gc.get_referrers(value)
        holders = [h for h in refs if id(h) not in ours and not isinstance(h, types.FrameType)]
        # A cell nothing refers to (no function's closure, no frame) is no use of it either.
        mine = {id(refs), id(holders)}
        holders = [h for h in holders if not isinstance(h, types.CellType) or
                   any(id(r) not in mine and not isinstance(r, types.FrameType) for r in gc.get_referrers(h))]
        if isinstance(owner, type):  # the class's own namespace (a dict behind its mappingproxy)
            holders = [h for h in holders if not (isinstance(h, dict) and h.get(attr) is value
                                                  and h.get("__qualname__") == owner.__qualname__)]
        if holders and not isinstance(value, type):
            self.notes.append(f"keep {what} (deleted from the source): the program still refers to it")
            return
        layers.plan_attr(u, owner, attr, MISSING)
        u.actions.append(f"remove {what}")

    # --- an update module -------------------------------------------------------------------------

    def apply_update(self, spec: PatchSpec) -> None:
        index = len(self.state.patches) + 1
        name = f"{PATCH_MODULE_PREFIX}{index}__"
        while name in self.state.modules or name in sys.modules:
            index += 1
            name = f"{PATCH_MODULE_PREFIX}{index}__"
        self.module_of[id(spec)] = name
        module = types.ModuleType(name)
        module.__file__ = spec.path
        sys.modules[name] = module
        u = layers.new_update(spec.path)
        u.snapshot = True
        try:
            try:
                code = rewrite_module(spec.data, spec.path)[0]
            except SyntaxError as e:
                raise UpdateRefusedError(f"--update {spec.path}: line {e.lineno}: {e.msg}") from None
            api._local.update = u
            try:
                exec(code, module.__dict__)
            finally:
                api._local.update = None
            if not u.actions:  # it changed the program's data itself (e.g. a table a crash tripped on)
                u.actions.append(f"ran {os.path.basename(spec.path)} (no stasis.update call: only what its code did "
                                 "to the program's objects)")
            if any(g.probes or g.profiles for g in u.groups):
                raise UpdateRefusedError(f"{spec.path}: instruments and profiles are for live processes "
                                         "(stasis ctl), not for a suspended program")
            # Nothing of the program runs: no safe point to wait for; conversions and new fields are
            # made for every instance now (a snapshot keeps no pending conversion).
            u.check_codes, u.checks = False, []
            for c in u.conversions:
                c.lazy = False
            for f in u.fields:
                f.lazy = False
            before = {id(g): _layer_before(g, u.id) for g in u.groups}
            layers.apply(u)
        except BaseException:
            layers.forget_plan(u)
            sys.modules.pop(name, None)
            raise
        src = self.source_code(spec.path, spec.data)
        for g in u.groups:
            old, new = before[id(g)], g.current().code
            if new is not old:
                self.changes.append(fm.CodeChange(old, new, self.source_of(old) or
                                                  (src if old.co_filename == spec.path else None),
                                                  src if new.co_filename == spec.path else self.source_of(new), g.name))
        self.rules += u.frame_rules
        self.notes += [f"{a} ({os.path.basename(spec.path)})" for a in u.actions]
        self.notes += [f"warning: {w}" for w in u.warnings]
        from ..modules import program_globals
        self.state.modules[name] = program_globals(module)
        self.sources[name] = ModuleSource(spec.path, spec.data, spec.sha256)

    # --- the frames -------------------------------------------------------------------------------

    def move_frames(self) -> None:
        """Moves every frame whose code changed to the new code, through each change in order;
        refuses the whole patch when any cannot move."""
        problems = list(self.refusals)
        example = None
        moved_threads = []
        crash = self.state.crash
        for t in self.state.threads:
            frames = []
            # In the thread a crash snapshot was written for, every frame is failing: a caller whose
            # call changed may run its (new) statement again instead, the frames inside it dropped.
            crashed = crash is not None and t.ident == crash.thread
            for i, record in enumerate(t.frames):
                current = record
                restarted = False
                problems += [why for r, why in self.deleted_running if r is record]
                for change in self.changes:
                    if not _same_code(current.code, change.old_code):
                        continue
                    line = fm.old_line(current)
                    module = self.module_name_of(change.old_code)
                    rule = next((r for r in self.rules if r.matches(module, change.old_code, line)), None)
                    try:
                        mapped = fm.map_record(current, change, rule)
                        how = ""
                    except fm.Refused as e:
                        mapped = None
                        if crashed and current.row is not None and i < len(t.frames) - 1:
                            try:
                                mapped = fm.map_record(current, change, rule, restart=True)
                                how = (f" (its call changed: the statement runs again, the {len(t.frames) - 1 - i} "
                                       "frame(s) inside it are dropped)")
                                restarted = True
                            except fm.Refused:
                                mapped = None
                        if mapped is None:
                            problems.append(f"thread {t.name!r}: {change.label} (old line {e.line}): {e.why}")
                            example = example or (change.label, e.line)
                            break
                    self.moved.append(f"thread {t.name!r}: {change.label} line {line} -> "
                                      f"{fm.old_line(mapped)}{how}")
                    current = mapped
                frames.append(current)
                if restarted:
                    break
            moved_threads.append(frames)
        if problems:
            hint = ""
            if example is not None:
                hint = (f" To say where such a frame continues, add an update module with e.g. stasis.update."
                        f"map_frame({example[0]!r}, {example[1]}, to_line=N) (rename= and init= for its locals).")
            raise UpdateRefusedError(f"patch refused, nothing was changed: {len(problems)} problem(s): "
                                     + "; ".join(problems) + "." + hint)
        for t, frames in zip(self.state.threads, moved_threads):
            t.frames = frames


# --- helpers -----------------------------------------------------------------------------------

def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    return a is b or (a == b and a.co_filename == b.co_filename)


def _layer_before(g: Any, update_id: int) -> types.CodeType:
    layers = [l for l in g.layers if l.update_id != update_id]
    return layers[-1].code if layers else g.base.code


def _heap_functions(filename: str) -> Tuple[Dict[types.CodeType, list], list]:
    """({code: [functions running it]}, [suspended generators]) of one file's code, in the heap."""
    funcs: Dict[types.CodeType, list] = {}
    gens = []
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename == filename:
            funcs.setdefault(obj.__code__, []).append(obj)
        elif isinstance(obj, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
            code = _generator_code(obj)
            if code is not None and code.co_filename == filename:
                gens.append(obj)
    return funcs, gens


def _generator_code(gen: Any) -> Optional[types.CodeType]:
    """The code a generator, coroutine or async generator runs."""
    return getattr(gen, "gi_code", None) or getattr(gen, "cr_code", None) or getattr(gen, "ag_code", None)


def _live_code(compiled: types.CodeType, funcs: dict, state: ProgramState, q: str, module: str) -> types.CodeType:
    """The program's own code object equal to the recompiled old one (frames refer to it)."""
    for fn in funcs.get(compiled, []):
        return fn.__code__
    if q == "<module>" and module == "__main__" and state.base_code == compiled:
        return state.base_code
    for t in state.threads:
        for r in t.frames:
            if r.code == compiled:
                return r.code
    return compiled


def _bound_names(s: ast.stmt) -> List[str]:
    """The names a simple module- or class-level statement binds (none for other statements)."""
    if isinstance(s, sd.DEFS):
        return [s.name]
    if isinstance(s, (ast.Import, ast.ImportFrom)):
        return [] if any(a.name == "*" for a in s.names) else \
            [a.asname or a.name.split(".")[0] for a in s.names]
    targets: List[ast.expr] = []
    if isinstance(s, ast.Assign):
        targets = s.targets
    elif isinstance(s, ast.AnnAssign) and s.value is not None:
        targets = [s.target]
    names = []
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name):
                names.append(n.id)
            elif isinstance(n, (ast.Attribute, ast.Subscript)):
                return []
    return names


def _resumable_codes(value: Any, module_code: types.CodeType) -> None:
    """Gives functions made by running a new statement plainly the rewriter's (resumable) code of
    the same definition, so that their frames can be suspended like the rest of the program."""
    by_key = {(c.co_qualname, c.co_firstlineno): c for c in sd.code_tree(module_code)}
    members = list(vars(value).values()) if isinstance(value, type) else [value]
    for m in members:
        fn = innermost_function(m)
        if fn is None:
            continue
        code = by_key.get((fn.__code__.co_qualname, fn.__code__.co_firstlineno))
        if code is not None and code.co_freevars == fn.__code__.co_freevars:
            fn.__code__ = code


def _resolve_qualname(mod: types.ModuleType, q: str) -> Any:
    obj: Any = mod
    for part in q.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _owner_namespace(mod: types.ModuleType, q: str) -> Optional[dict]:
    owner = _resolve_qualname(mod, q.rpartition(".")[0]) if "." in q and "<locals>" not in q else None
    return dict(owner.__dict__) if isinstance(owner, type) else None


def _evaluate(node: ast.expr, mod: types.ModuleType, namespace: Optional[dict], filename: str) -> Any:
    code = compile(ast.Expression(node), filename, "eval", dont_inherit=True)
    return eval(code, mod.__dict__, namespace if namespace is not None else mod.__dict__)


def _defaults_differ(old: ast.AST, new: ast.AST) -> bool:
    a, b = old.args, new.args
    return [sd.dump(d) for d in a.defaults] != [sd.dump(d) for d in b.defaults] or \
        [sd.dump(d) for d in a.kw_defaults] != [sd.dump(d) for d in b.kw_defaults]


def _defaults(old: Optional[ast.AST], new: ast.AST, fn: Optional[types.FunctionType], mod: types.ModuleType,
              namespace: Optional[dict], filename: str) -> tuple:
    """(__defaults__, __kwdefaults__) for the new definition: the running function's own default
    objects when the default expressions did not change (a mutable default keeps what it holds),
    else the new expressions evaluated in the module (and class) namespace."""
    a = new.args
    if old is not None and fn is not None and \
            [sd.dump(d) for d in old.args.defaults] == [sd.dump(d) for d in a.defaults] and \
            [sd.dump(d) for d in old.args.kw_defaults] == [sd.dump(d) for d in a.kw_defaults] and \
            [x.arg for x in old.args.kwonlyargs] == [x.arg for x in a.kwonlyargs]:
        return fn.__defaults__, fn.__kwdefaults__
    defaults = tuple(_evaluate(d, mod, namespace, filename) for d in a.defaults) or None
    kw = {x.arg: _evaluate(d, mod, namespace, filename) for x, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None}
    return defaults, kw or None


def _class_codes(cls: type) -> List[types.CodeType]:
    out = []
    for v in vars(cls).values():
        fn = innermost_function(v)
        if fn is not None:
            out.append(fn.__code__)
    return out


def _has_instances(cls: type) -> bool:
    return any(isinstance(o, cls) for o in gc.get_objects() if not isinstance(o, type))
