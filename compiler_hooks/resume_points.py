"""Resume-point tables: found in compiled rewritten code, stored in the code object itself.

Counterparts: `rewriter` (produces the code), `sites` (gives sites their stable ids),
`bytecode` (the 3.11 instructions and the stack model).  The consumer is the suspend/resume engine
(C++), which reads the table from the last entry of `co_consts`; the exact layout is in README.md ("Resume-point table").  Invariant: a row is marked resumable only
if the bytecode from its start offset to its call is straight-line, holds no other suspension
site, stores nothing, and starts with only the listed structural values on the stack, so
re-executing it from `start` with those values pushed re-creates the call.
"""
from __future__ import annotations

import ast
from types import CodeType
from typing import Iterator, NamedTuple

from . import bytecode as bc
from .bytecode import (ASYNC_FOR_ITER, COMP_ACC, EXC, EXC_PREV, FOR_ITER, LASTI, OPERAND,
                       WITH_EXIT, Instruction, stack_tags)
from .sites import SITE_ATTR, is_pure_call

MARKER = '.stasis-resume-table'
TABLE_VERSION = 1

# The stack values a row may list (bytecode.py defines what each is; the engine reads these names).
# Structural ones are established by an enclosing construct and alive across statements.
STRUCTURAL = frozenset({FOR_ITER, ASYNC_FOR_ITER, WITH_EXIT, EXC_PREV, EXC, COMP_ACC, LASTI})
AWAITED = 'awaited'                 # (in-place rows of await/yield from only) the SEND receiver
# OPERAND, the result of a completed call still on the stack under a later site of the same
# statement (`f(a) + g(b)`: f's result while g runs), is not structural: it lives within one
# statement.  A call row may start replay right after the call that produced it; the engine then
# captures it from its slot like a structural value (the rewriter keeps one only where it saves a
# local).
CAPTURED = STRUCTURAL | {OPERAND}


class Row(NamedTuple):
    """One suspension site of a code object.

    `start` is the byte offset where replay begins (-1: not resumable; == `begin` for `yield`,
    `await` and `yield from`, which are resumed in place, not replayed); `begin`..`end` is the
    byte range in which `f_lasti` lies while the frame is suspended at this site (PRECALL/CALL
    and its caches, or SEND/YIELD_VALUE of an await loop); `stack` lists the structural values
    that are on the value stack at `start`, bottom first; `reason` says why a row is not
    resumable ('' when it is)."""
    id: str
    start: int
    begin: int
    end: int
    line: int
    stack: tuple[str, ...]
    reason: str

    @property
    def resumable(self) -> bool:
        return self.start >= 0

    def describe(self) -> str:
        if self.resumable:
            stack = ', '.join(self.stack) or '-'
            return f'resume {self.id} @{self.start}..{self.begin} stack=[{stack}]'
        return f'NOT resumable {self.id} @{self.begin}: {self.reason}'


# --------------------------------------------------------------------------------------------
# Rows.

GENERATOR_CREATION = 'creates a generator: runs no code there, never suspended'


GENEXP, PURE = 'genexp', 'pure'


def _positions_index(tree: ast.AST | None) -> dict[tuple, tuple[str, str]]:
    """Source span -> (site id, kind) for the site nodes of a rewritten tree."""
    out: dict[tuple, tuple[str, str]] = {}
    if tree is None:
        return out
    pure: frozenset = getattr(tree, '_stasis_pure', frozenset())
    for n in ast.walk(tree):
        sid = getattr(n, SITE_ATTR, None)
        if sid is not None and hasattr(n, 'lineno'):
            key = (n.lineno, n.end_lineno, n.col_offset, n.end_col_offset)
            kind = GENEXP if isinstance(n, ast.GeneratorExp) else PURE if is_pure_call(n, pure) else ''
            out.setdefault(key, (sid, kind))
    return out


def build_rows(code: CodeType, pos_index: dict[tuple, tuple[str, str]]) -> list[Row]:
    instrs, before = stack_tags(code)
    rows: list[Row] = []
    n = len(instrs)
    for i, ins in enumerate(instrs):
        name = ins.opname
        if name not in bc.SITES or ins.offset not in before:
            continue
        if name == 'YIELD_VALUE' and i > 0 and instrs[i - 1].opname == 'SEND':
            continue                                   # part of an await / yield-from loop
        begin = ins.offset
        if name == 'CALL' and i > 0 and instrs[i - 1].opname == bc.CALL_PREFIX:
            begin = instrs[i - 1].offset
        j = i + 1
        if name == 'SEND':
            while j < n and instrs[j].opname in bc.AWAIT_LOOP:
                j += 1
        end = instrs[j].offset if j < n else bc.code_size(code)
        pos = tuple(ins.positions)
        sid, kind = pos_index.get(pos, (None, ''))
        line = ins.positions.lineno or -1
        if name == 'BEFORE_WITH':   # the With node's own id names its __exit__ call
            sid = f'{sid}.enter' if sid is not None else f'with@{pos[0]}:{pos[2]}'
        if sid is None:
            sid = f'implicit@{pos[0]}:{pos[2]}'
        st = before[ins.offset]
        base = 0
        while base < len(st) and st[base] in STRUCTURAL:
            base += 1
        # A call may also keep completed call results below it (OPERAND): replay then starts
        # after the call that produced the topmost one.
        cbase = base
        while cbase < len(st) and st[cbase] in CAPTURED:
            cbase += 1
        # ... but never a value the site itself consumes (a decorator applied to the function,
        # a context manager): a Python callee owns those once it runs, so their slots are stale.
        cbase = min(cbase, max(base, len(st) - bc.call_consumes(ins)))
        if name == 'SEND':
            # `await` / `yield from`: resumed in place at the YIELD_VALUE of the SEND loop, with
            # the structural values and the awaited object (the SEND receiver) pushed back.
            below = st[:-2]
            ok = all(k in STRUCTURAL for k in below)
            rows.append(Row(sid, begin if ok else -1, begin, end, line,
                            (below + (AWAITED,)) if ok else st[:base],
                            '' if ok else 'temporary values under the awaited object'))
            continue
        if name == 'YIELD_VALUE':
            # Resumed in place: a suspended generator is rebuilt at its YIELD_VALUE (locals,
            # the structural values below the yielded one, prev_instr), nothing is replayed.
            below = st[:-1]
            ok = all(k in STRUCTURAL for k in below)
            rows.append(Row(sid, begin if ok else -1, begin, end, line, below if ok else st[:base],
                            '' if ok else 'temporary values under the yielded value'))
            continue
        start, reason = _find_start(instrs, before, i, cbase, pos_index)
        if kind == GENEXP and name in bc.CALLS:
            reason, start = GENERATOR_CREATION, -1
        elif sid.startswith('implicit@') and not reason:
            reason = 'implicit call (no source expression to replay)'
            start = -1
        rows.append(Row(sid, start if not reason else -1, begin, end, line, st[:cbase], reason))
    return rows


def _find_start(instrs: list[Instruction], before: dict[int, tuple[str, ...]],
                i: int, base: int, pos_index: dict[tuple, tuple[str, str]]) -> tuple[int, str]:
    """Start of the replay region that ends with the site at `instrs[i]`."""
    j = i - 1
    while j >= 0:
        st = before.get(instrs[j].offset)
        if st is None:
            return -1, 'unreachable prefix'
        if len(st) < base:
            return -1, 'stack shallower than its structural base'
        if len(st) == base:
            break
        j -= 1
    if j < 0:
        return -1, 'no statement start found'
    while j > 0 and instrs[j - 1].opname == 'EXTENDED_ARG':
        j -= 1
    for k in range(j, i):
        ins = instrs[k]
        name = ins.opname
        if name in bc.CALLS and pos_index.get(tuple(ins.positions), ('', ''))[1] in (PURE, GENEXP):
            continue        # a pure builtin (sites.PURE_BUILTINS) is recomputed on replay;
            #               creating a generator runs none of its code (a fresh one is made)
        if name in bc.NOT_REPLAYABLE or bc.stores(ins):
            return -1, f'{name} at {ins.offset} precedes the site in the same statement'
    st_site = before[instrs[i].offset]
    if before[instrs[j].offset][:base] != st_site[:base]:
        return -1, 'structural stack differs between statement start and site'
    return instrs[j].offset, ''


# --------------------------------------------------------------------------------------------
# Storage in the code object.

def encode(rows: list[Row]) -> tuple:
    return (MARKER, TABLE_VERSION, tuple(tuple(r) for r in rows))


def attach_tables(code: CodeType, tree: ast.AST | None) -> CodeType:
    """Return `code` (recursively: nested code objects too) with its table appended to
    `co_consts`.  Appending a constant changes no instruction."""
    index = _positions_index(tree)

    def rec(co: CodeType) -> CodeType:
        consts = tuple(rec(c) if isinstance(c, CodeType) else c for c in co.co_consts)
        rows = build_rows(co, index)
        return co.replace(co_consts=consts + (encode(rows),))
    return rec(code)


def resume_table(code: CodeType) -> list[Row] | None:
    """The resume-point table of a rewritten code object, or None if it was not rewritten."""
    consts = code.co_consts
    if not consts:
        return None
    last = consts[-1]
    if not (type(last) is tuple and len(last) == 3 and last[0] == MARKER):
        return None
    if last[1] != TABLE_VERSION:
        return None
    return [Row(*r) for r in last[2]]


def iter_tables(code: CodeType) -> Iterator[tuple[CodeType, list[Row]]]:
    """(code object, table) for `code` and every code object nested in it."""
    table = resume_table(code)
    if table is not None:
        yield code, table
    for c in code.co_consts:
        if isinstance(c, CodeType):
            yield from iter_tables(c)
