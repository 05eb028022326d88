"""Moving a suspended frame from old code to new code: its resume point becomes the corresponding
point of the new code (the same statement of the block structure, source_diff.py), its locals are
carried by name, its structural stack values (loop iterators, `with` exits) and hidden temporaries
are kept where the new code has the same ones, and a frame that cannot be moved is refused with
the reason. Used by snapshot_patch.py on the frame records of a program snapshot
(format/program_schema.h) — the records replay (restore/replay.cpp) rebuilds stacks from.

Two kinds of records:
- a *caller* (row set): suspended in a call at a resume-table row (compiler_hooks/README.md); it
  continues at the row of the same call in the new code (replay issues the call again, which
  creates the callee's frame). The call's callee must be the same expression.
- the *innermost* frame (row None), captured at the start of a line (a suspension) or positioned
  at the start of the statement that raised (a crash snapshot): it continues at the
  corresponding statement of the new code; at a statement's start it may have changed (that is
  how a crash is fixed), in the middle of one the statement must be the same.
"""
from __future__ import annotations

import ast
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..compiler_hooks import bytecode
from ..compiler_hooks.resume_points import STRUCTURAL, resume_table, stack_tags
from . import source_diff as sd
from .errors import UpdateError
from .source_diff import Definition, Step


@dataclass
class SourceCode:
    """A module's source as compiled, parsed, with its definitions."""
    filename: str
    tree: ast.Module
    defs: Dict[str, Definition]

    @classmethod
    def parse(cls, source: bytes, filename: str) -> "SourceCode":
        tree = ast.parse(source, filename, "exec")
        return cls(filename, tree, sd.definitions(tree))


@dataclass
class CodeChange:
    """One code object replaced by another, with the sources they were compiled from."""
    old_code: types.CodeType
    new_code: types.CodeType
    old_src: Optional[SourceCode]
    new_src: Optional[SourceCode]
    label: str                        # "job.helper"


@dataclass
class FrameRule:
    """stasis.update.map_frame(...): how frames of one function continue in its new code."""
    module: str
    qualname: str
    line: Optional[int]               # the old line the frame is at (None: every frame of it)
    to_line: Optional[int]            # the new line it continues at (None: found by matching)
    rename: Dict[str, str] = field(default_factory=dict)    # old local name -> new local name
    init: Dict[str, Callable[[Dict[str, Any]], Any]] = field(default_factory=dict)

    def matches(self, module: str, code: types.CodeType, line: int) -> bool:
        return (self.qualname == code.co_qualname and self.module == module
                and (self.line is None or self.line == line))


class Refused(Exception):
    """A frame that cannot continue in the new code: `why` says what changed."""

    def __init__(self, why: str, line: int):
        super().__init__(why)
        self.why, self.line = why, line


# --- what the code of one definition looks like -----------------------------------------------

class CodeShape:
    """The instructions of a code object by the statement of its definition they belong to (the
    innermost statement whose source span holds the instruction's position), and its value-stack
    tags (resume_points.stack_tags)."""

    def __init__(self, code: types.CodeType, definition: Definition):
        self.code = code
        self.definition = definition
        self.instrs, self.tags = stack_tags(code)
        self.by_offset = {i.offset: i for i in self.instrs}
        statements = [(sd.span(s), path) for path, s in sd.body_statements(definition.node)]
        self.owner: Dict[int, Tuple[Step, ...]] = {}
        self.own: Dict[Tuple[Step, ...], List[int]] = {}
        for ins in self.instrs:
            p = ins.positions
            if p is None or p.lineno is None or p.col_offset is None or p.end_lineno is None:
                continue
            where = (p.lineno, p.col_offset, p.end_lineno, p.end_col_offset)
            best = None
            for sp, path in statements:
                if sd.contains(sp, where) and (best is None or sd.contains(best[0], sp)):
                    best = (sp, path)
            if best is not None:
                key = tuple(best[1])
                self.owner[ins.offset] = key
                self.own.setdefault(key, []).append(ins.offset)

    def statement_at(self, offset: int) -> Tuple[Optional[Tuple[Step, ...]], int]:
        """(statement path, index of `offset` among that statement's own instructions). An offset
        inside an instruction's inline caches (a frame's f_lasti during a call) is that instruction."""
        if offset not in self.by_offset:
            starts = [o for o in self.by_offset if o <= offset]
            if not starts:
                return None, -1
            offset = max(starts)
        key = self.owner.get(offset)
        if key is None:
            return None, -1
        return key, self.own[key].index(offset)

    def opnames(self, key: Tuple[Step, ...]) -> List[str]:
        return [self.by_offset[o].opname for o in self.own.get(key, [])]

    def named_reads_from(self, offset: int) -> List[str]:
        """Locals of the program's own names the code may read after `offset` before assigning
        them (in code order: an approximation of the paths through it)."""
        seen, needed = set(), []
        for ins in self.instrs:
            if ins.offset < offset or ins.opname not in ("LOAD_FAST", "STORE_FAST", "DELETE_FAST"):
                continue
            name = ins.argval
            if not isinstance(name, str) or name.startswith(".") or name in seen:
                continue
            seen.add(name)
            if ins.opname != "STORE_FAST":
                needed.append(name)
        return needed

    def hidden_reads_from(self, offset: int) -> List[str]:
        """Hidden temporaries (`.t0`, ...) the code reads after `offset` before writing them:
        a frame continuing there needs them bound. In code order (loops are entered at their
        top, so a temporary written earlier in a loop body is written again before it is read)."""
        seen, needed = set(), []
        for ins in self.instrs:
            if ins.offset < offset or ins.opname not in ("LOAD_FAST", "STORE_FAST", "DELETE_FAST"):
                continue
            name = ins.argval
            if not _hidden(name) or name in seen:
                continue
            seen.add(name)
            if ins.opname != "STORE_FAST":
                needed.append(name)
        return needed


def _hidden(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(".") and not name[1:2].isdigit()


def line_of(code: types.CodeType, offset: int) -> int:
    for ins in bytecode.instructions(code):
        if ins.offset == offset:
            return ins.positions.lineno or code.co_firstlineno
    return code.co_firstlineno


def old_line(record: Any) -> int:
    """The line a frame record is at: its row's line (a caller) or its offset's line."""
    if record.row is not None:
        for r in resume_table(record.code) or ():
            if r.id == record.row:
                return r.line
    return line_of(record.code, record.offset)


# --- mapping one frame ------------------------------------------------------------------------

def map_record(record: Any, change: CodeChange, rule: Optional[FrameRule], restart: bool = False) -> Any:
    """The frame record moved to `change.new_code` (a copy), or Refused. With `restart`, a caller
    is moved as if it stood at the start of the statement it is suspended in (a crash snapshot's
    caller whose call changed: the frames inside it are dropped and the statement runs again)."""
    line = old_line(record)
    old_src, new_src = change.old_src, change.new_src
    if old_src is None:
        raise Refused("the source of its old code is not in the snapshot", line)
    if new_src is None:
        raise Refused("its new code has no source to compare with", line)
    if resume_table(change.new_code) is None:
        raise Refused("its new code is not resumable (compile it through Stasis)", line)
    old_def = sd.find_definition(old_src.defs, change.old_code)
    new_def = sd.find_definition(new_src.defs, change.new_code)
    if old_def is None:
        raise Refused("its old code is not a function of the recorded source (a lambda or comprehension, "
                      "or code changed by a live update)", line)
    if new_def is None:
        raise Refused("its new code is not a function of the new source (a lambda or comprehension)", line)
    old_shape, new_shape = CodeShape(change.old_code, old_def), CodeShape(change.new_code, new_def)
    if restart and record.row is not None:
        record = statement_start(record, old_shape, line)
    if record.row is not None:
        new_row, stack = _map_caller(record, old_def, new_def, new_shape, rule, line)
        offset, row = new_row.start, new_row.id
    else:
        offset, stack = _map_innermost(record, old_shape, new_shape, new_def, rule, line)
        row = None
    locals_ = _map_locals(record.locals, change.old_code, change.new_code, rule)
    if change.new_code.co_flags & 0x1:  # CO_OPTIMIZED: a function frame (module frames keep no locals)
        missing = [n for n in new_shape.hidden_reads_from(offset) if n not in locals_]
        if missing:
            raise Refused(f"the new code at line {line_of(change.new_code, offset)} reads the hidden "
                          f"temporaries {missing}, which the old frame did not compute", line)
        old_names = set(change.old_code.co_varnames) | set(change.old_code.co_cellvars)
        unbound = [n for n in new_shape.named_reads_from(offset) if n not in locals_ and n not in old_names]
        if unbound:
            names = ", ".join(repr(n) for n in unbound)
            raise Refused(f"the new code at line {line_of(change.new_code, offset)} reads the local(s) {names}, "
                          f"new in this version, before assigning them: say their values with map_frame(..., "
                          f"init={{{unbound[0]!r}: lambda f: ...}}) or, for a renamed local, rename={{'old': "
                          f"{unbound[0]!r}}}", line)
    return type(record)(code=change.new_code, row=row, offset=offset, locals=locals_, stack=stack)


def statement_start(record: Any, shape: CodeShape, line: int) -> Any:
    """A caller's record moved back to the start of the statement it is suspended in: row None,
    the statement's first instruction, only its loop/`with` values kept on the stack."""
    rows = [r for r in resume_table(record.code) or () if r.id == record.row]
    if not rows:
        raise Refused(f"its resume row {record.row} is not in its code's table", line)
    key, _k = shape.statement_at(rows[0].start)
    if key is None:
        raise Refused("its call is not in a statement of its function", line)
    start = shape.own[key][0]
    tags = rows[0].stack
    if len(tags) != len(record.stack):
        raise Refused("its value stack cannot be read at its call", line)
    stack = tuple(v for v, tag in zip(record.stack, tags) if tag in STRUCTURAL)
    return type(record)(code=record.code, row=None, offset=start, locals=record.locals, stack=stack)


def _map_caller(record: Any, old_def: Definition, new_def: Definition, new_shape: CodeShape,
                rule: Optional[FrameRule], line: int) -> tuple:
    old_rows = [r for r in resume_table(record.code) or () if r.id == record.row]
    if not old_rows:
        raise Refused(f"its resume row {record.row} is not in its code's table", line)
    old_row = old_rows[0]
    steps = sd.parse_path(record.row.split(".enter")[0] if record.row.endswith(".enter") else record.row)
    if steps[:len(old_def.path)] != old_def.path:
        raise Refused(f"its resume row {record.row} is not inside {old_def.qualname}", line)
    rel = steps[len(old_def.path):]
    cut = sd.statement_prefix(old_def.node, rel)
    stmt_steps, suffix = rel[:cut], rel[cut:]
    site = sd.follow(old_def.node, rel)
    if rule is not None and rule.to_line is not None:
        new_stmt_path = _statement_at_line(new_def, rule.to_line, line)
        new_site = _same_call(site, sd.follow(new_def.node, new_stmt_path), rule.to_line, line)
        new_rel = new_stmt_path + new_site
    else:
        m = sd.match_statement(old_def.node, new_def.node, stmt_steps)
        if m.new_path is None:
            raise Refused(m.why, line)
        if m.same:
            new_rel = m.new_path + suffix
        else:
            new_stmt = sd.follow(new_def.node, m.new_path)
            new_rel = m.new_path + _same_call(site, new_stmt, getattr(new_stmt, "lineno", line), line)
    new_id = sd.format_path(new_def.path + new_rel) + (".enter" if record.row.endswith(".enter") else "")
    candidates = [r for r in resume_table(new_shape.code) or () if r.id == new_id]
    if not candidates:
        raise Refused(f"the new code has no resume point for the call it is in ({new_id})", line)
    resumable = [r for r in candidates if r.resumable]
    if not resumable:
        raise Refused(f"the call it is in is not a resume point of the new code: {candidates[0].reason}", line)
    same_stack = [r for r in resumable if r.stack == old_row.stack]
    if not same_stack:
        raise Refused(f"the call it is in has other values under it in the new code ({list(resumable[0].stack)} "
                      f"instead of {list(old_row.stack)})", line)
    return same_stack[0], record.stack


def _same_call(site: ast.AST, new_stmt: ast.AST, new_line: int, line: int) -> List[Step]:
    """Path (inside `new_stmt`) of the one call in it whose callee is the old call's callee."""
    if not isinstance(site, ast.Call):
        raise Refused(f"its statement changed around a {type(site).__name__.lower()} it is suspended in", line)
    callee = sd.dump(site.func)
    found = [p for p, node in _walk_paths(new_stmt, []) if isinstance(node, ast.Call) and sd.dump(node.func) == callee]
    what = ast.unparse(site.func)
    if not found:
        raise Refused(f"the call it is inside ({what}(...)) is not in its statement any more (line {new_line}): "
                      "its callee changed", line)
    if len(found) > 1:
        raise Refused(f"its statement (line {new_line}) calls {what} {len(found)} times", line)
    return found[0]


def _walk_paths(node: ast.AST, path: List[Step]):
    yield path, node
    for f, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST) and not isinstance(item, ast.stmt):
                    yield from _walk_paths(item, path + [(f, i)])
        elif isinstance(value, ast.AST):
            yield from _walk_paths(value, path + [(f, None)])


def _statement_at_line(new_def: Definition, to_line: int, line: int) -> List[Step]:
    for path, s in sd.body_statements(new_def.node):
        if s.lineno == to_line:
            return path
    raise Refused(f"map_frame: no statement of the new {new_def.qualname} starts at line {to_line}", line)


def _map_innermost(record: Any, old_shape: CodeShape, new_shape: CodeShape, new_def: Definition,
                   rule: Optional[FrameRule], line: int) -> tuple:
    key, k = old_shape.statement_at(record.offset)
    if key is None:
        raise Refused("it is not at a statement of its function", line)
    if rule is not None and rule.to_line is not None:
        new_key = tuple(_statement_at_line(new_def, rule.to_line, line))
        same, k = False, 0
    else:
        # At the start of its statement, statements inserted in front of it run first (a guard
        # added before the statement that raised, say).
        m = sd.match_statement(old_shape.definition.node, new_def.node, list(key), run_inserted=k == 0)
        if m.new_path is None:
            raise Refused(m.why, line)
        new_key, same = tuple(m.new_path), m.same
        old_stmt = sd.follow(old_shape.definition.node, list(key))
        new_stmt = sd.follow(new_def.node, list(new_key))
        if isinstance(old_stmt, sd.COMPOUND) and type(old_stmt) is type(new_stmt):
            # At its header (a loop's next iteration, a test): only the header has to be the same.
            same = same or sd.header(old_stmt) == sd.header(new_stmt)
    own = new_shape.own.get(new_key)
    if not own:
        raise Refused("its statement compiles to no code in the new version", line)
    if rule is not None and rule.to_line is not None:
        # Where in that statement: its start, or (a loop header the frame is inside) the point
        # with the frame's loop values on the stack: the loop's next iteration.
        want = tuple(t for t in old_shape.tags.get(record.offset, ()) if t in STRUCTURAL)
        fits = [o for o in own if new_shape.tags.get(o) == want]
        if fits:
            k, own = 0, fits
    if k == 0:
        new_offset = own[0]
    elif same and old_shape.opnames(key) == new_shape.opnames(new_key):
        new_offset = own[k]
    else:
        raise Refused("it is in the middle of its statement, which changed", line)
    old_tags = old_shape.tags.get(record.offset)
    new_tags = new_shape.tags.get(new_offset)
    if old_tags is None or new_tags is None or len(record.stack) != len(old_tags):
        raise Refused("its value stack cannot be read at this point", line)
    if old_tags != new_tags if k else (tuple(t for t in old_tags if t in STRUCTURAL) != new_tags):
        raise Refused(f"the new statement (line {line_of(new_shape.code, new_offset)}) is inside other loops or "
                      f"`with` blocks ({list(new_tags)} instead of {list(old_tags)})", line)
    return new_offset, record.stack


def _map_locals(old: Dict[str, Any], old_code: types.CodeType, new_code: types.CodeType,
                rule: Optional[FrameRule]) -> Dict[str, Any]:
    out = dict(old)
    if rule is not None:
        for a, b in rule.rename.items():
            if a in out:
                out[b] = out.pop(a)
    old_cells, new_cells = set(old_code.co_cellvars), set(new_code.co_cellvars)
    for name, value in list(out.items()):
        if name in new_cells and name not in old_cells:
            out[name] = types.CellType(value)
        elif name in old_cells and name not in new_cells and isinstance(value, types.CellType):
            try:
                out[name] = value.cell_contents
            except ValueError:
                del out[name]
    if rule is not None and rule.init:
        # init functions see the frame's locals by their old names and, when renamed, their new ones.
        view = {}
        for n, v in list(old.items()) + list(out.items()):
            if isinstance(v, types.CellType):
                try:
                    v = v.cell_contents
                except ValueError:
                    continue
            view[n] = v
        for name, make in rule.init.items():
            if name not in out:
                try:
                    value = make(dict(view))
                except Exception as e:  # the update module's code: reported, nothing applied
                    raise UpdateError(f"map_frame({rule.module}.{rule.qualname}): init of {name!r} raised "
                                      f"{type(e).__name__}: {e} (it is given the frame's locals: "
                                      f"{sorted(view)})") from None
                out[name] = types.CellType(value) if name in new_cells else value
    return out
