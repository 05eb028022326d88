"""CPython 3.11 bytecode, line tables and exception tables: the one Python module that knows their
layout (the Python twin of core/cpython_internals.h; a port to another CPython touches the two).

Owns: the code-unit encoding of instructions (EXTENDED_ARG, inline caches), how a call is
spelled (PRECALL + CALL), the exception-table and line-table formats, the private `dis`/`opcode`
helpers Stasis relies on, the opcode groups the resume-point tables are built from, and the value
stack model with a tag per slot (`stack_tags`).  Users: compiler_hooks/resume_points.py (the
tables), updater/instrument.py (the profile prologue), stasis/program/crash.py (crash handlers).
Invariant: `encode_exception_table(exception_entries(c)) == c.co_exceptiontable` for every code
object `c` (tests/compiler_hooks/test_bytecode.py checks it on the standard library).

Checked against CPython 3.11.2 (Debian 12 python3.11 3.11.2-6+deb12u*) and 3.11.7 (pyenv):
tests/compiler_hooks/test_bytecode.py passes on both.  Sources: Lib/dis.py (`_parse_exception_table`,
`get_instructions`, `stack_effect`), Lib/opcode.py (`_inline_cache_entries`), Objects/
exception_handling_notes.txt (exception table varints), Objects/locations.md (line table entries),
Python/compile.c (the shapes of calls, loops, `with`, handlers); CPYTHON311.md §8.

3.12 port: what to revisit here (test_bytecode run with pyenv's 3.12.1: the exception table,
instruction encoding and line table helpers pass unchanged, and `dis._parse_exception_table` and
`opcode._inline_cache_entries` still exist; the call spelling and the stack model fail):
  * `call_instructions`, `CALL_PREFIX`, `call_consumes`: 3.12 has no PRECALL; CALL n takes
    [NULL or method, callable or self, args] itself (3.13 swaps the first two).
  * `stack_tags`/`_effect`: a loop's exit goes through END_FOR (FOR_ITER's jump effect
    changes), `SEND` loops end in END_SEND, RETURN_CONST returns without a stack value, comprehensions are inlined (PEP 709:
    no <listcomp> frame, LOAD_FAST_AND_CLEAR/SWAP around the loop, so COMP_ACC and
    COMPREHENSION_NAMES change meaning).
  * `NOT_REPLAYABLE`, `TERMINAL`: PRINT_EXPR, IMPORT_STAR and PREP_RERAISE_STAR are gone
    (CALL_INTRINSIC_1/2 replace them); add RETURN_CONST, END_SEND, INSTRUMENTED_* (PEP 669).
Callers that match 3.11 instruction shapes themselves (revisit too): stasis/program/crash.py
`_Handlers` and `_is_ours` (the bytecode of `except`/`with`/`finally` handlers and of its own
stubs), resume_points.build_rows (SEND/YIELD_VALUE/BEFORE_WITH rows), updater/frame_map.py and
updater/layers.py (*_FAST and LOAD_GLOBAL opnames).
"""
from __future__ import annotations

import dis
import opcode
from types import CodeType
from typing import Any, Iterable, Iterator, NamedTuple

Instruction = dis.Instruction


def instructions(code: CodeType) -> list[Instruction]:
    """The instructions of `code`, without their inline CACHE entries."""
    return list(dis.get_instructions(code))


def code_size(code: CodeType) -> int:
    """Size of the bytecode in bytes (2 per code unit, inline caches included)."""
    return len(code.co_code)


# --------------------------------------------------------------------------------------------
# Instructions: encoding, sizes, stack effects, jumps.

def unpack(code: CodeType) -> Iterator[tuple[int, int, int | None]]:
    """(offset, opcode, argument) for every code unit of `code`, inline CACHE units included,
    EXTENDED_ARG folded into the next argument (`dis._unpack_opargs`, private in 3.11): the
    cheapest walk over the de-specialised bytecode."""
    return dis._unpack_opargs(code.co_code)          # type: ignore[attr-defined]  # private in 3.11


class Decoded(NamedTuple):
    """An instruction as `decode` gives it: what dis.Instruction has but its text forms."""
    offset: int
    opname: str
    arg: int | None
    argval: Any


def decode(code: CodeType) -> list[Decoded]:
    """The instructions of `code` (CACHE units included) with their argument values, without
    dis.get_instructions' text forms (the repr of a large constant is slow)."""
    out = []
    names, consts = code.co_names, code.co_consts
    varname = code._varname_from_oparg                # type: ignore[attr-defined]  # private in 3.11
    for offset, op, arg in unpack(code):
        name = dis.opname[op]
        value: Any = arg
        if arg is not None:
            if op in dis.hasconst:
                value = consts[arg]
            elif name == 'LOAD_GLOBAL':
                value = names[arg >> 1]
            elif op in dis.hasname:
                value = names[arg]
            elif op in dis.haslocal or op in dis.hasfree:
                value = varname(arg)
            elif op in dis.hasjrel:
                value = offset + 2 + (-arg if 'BACKWARD' in name else arg) * 2
        out.append(Decoded(offset, name, arg, value))
    return out


def opname_at(code: CodeType, offset: int) -> str:
    """The (de-specialised) instruction at byte `offset`."""
    return dis.opname[code.co_code[offset]]


OPMAP = opcode.opmap


def inline_cache_units(op: int) -> int:
    """Code units of inline cache after an instruction (Include/internal/pycore_code.h)."""
    return opcode._inline_cache_entries[op]         # type: ignore[attr-defined]  # private in 3.11 (no public form)


def instruction_end(ins: Instruction) -> int:
    """Offset just after `ins` and its inline caches."""
    return ins.offset + 2 + 2 * inline_cache_units(ins.opcode)


def encode_instruction(name: str, arg: int = 0) -> bytes:
    """One instruction: EXTENDED_ARG prefixes for a large argument, then its zeroed caches."""
    op = OPMAP[name]
    out = bytearray()
    if arg > 0xFF:
        for shift in (24, 16, 8):
            if arg >> shift:
                out += bytes([OPMAP['EXTENDED_ARG'], (arg >> shift) & 0xFF])
    out += bytes([op, arg & 0xFF])
    out += b'\0\0' * inline_cache_units(op)
    return bytes(out)


# A call of `nargs` positional arguments whose callable (after a NULL) and arguments are on the
# stack: `PUSH_NULL; <callable>; <args>; call_instructions(n)`.  3.11 spells it PRECALL + CALL.
CALL_PREFIX = 'PRECALL'


def call_instructions(nargs: int) -> bytes:
    return encode_instruction('PRECALL', nargs) + encode_instruction('CALL', nargs)


def stack_effect(ins: Instruction, jump: bool) -> int:
    """Net stack effect of `ins` (on its jump or fall-through path); ValueError for an unknown
    opcode, like `dis.stack_effect`."""
    arg = ins.arg if ins.opcode >= opcode.HAVE_ARGUMENT else None
    return dis.stack_effect(ins.opcode, arg, jump=jump)


def jumps(ins: Instruction) -> bool:
    """Whether `ins` may jump (to `ins.argval`, a byte offset)."""
    return ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs


# --------------------------------------------------------------------------------------------
# Opcode groups (3.11 names).

CALLS = frozenset({'CALL', 'CALL_FUNCTION_EX'})
# BEFORE_WITH calls __enter__: a thread blocked entering `with lock:` (a C __enter__), or a
# Python __enter__ entered from it, is suspended there; replay evaluates the `with` item again.
SITES = CALLS | {'SEND', 'YIELD_VALUE', 'BEFORE_WITH'}
# An await / yield-from loop: SEND, then these up to the loop's end.
AWAIT_LOOP = ('YIELD_VALUE', 'RESUME', 'JUMP_BACKWARD_NO_INTERRUPT')
# Instructions whose re-execution is observable or impossible: never in a replayed prefix.
NOT_REPLAYABLE = SITES | {
    'FOR_ITER', 'BEFORE_WITH', 'BEFORE_ASYNC_WITH', 'IMPORT_NAME', 'IMPORT_FROM', 'IMPORT_STAR',
    'RAISE_VARARGS', 'RERAISE', 'PUSH_EXC_INFO', 'POP_EXCEPT', 'RETURN_VALUE', 'GET_ANEXT',
    'WITH_EXCEPT_START', 'JUMP_BACKWARD', 'JUMP_BACKWARD_NO_INTERRUPT',
    'SETUP_ANNOTATIONS', 'PRINT_EXPR', 'END_ASYNC_FOR', 'CHECK_EG_MATCH', 'PREP_RERAISE_STAR',
}
UNCONDITIONAL_JUMPS = frozenset({'JUMP_FORWARD', 'JUMP_BACKWARD', 'JUMP_BACKWARD_NO_INTERRUPT'})
TERMINAL = frozenset({'RETURN_VALUE', 'RAISE_VARARGS', 'RERAISE'})
COMPREHENSION_NAMES = frozenset({'<listcomp>', '<setcomp>', '<dictcomp>'})   # own frames in 3.11
# The frame prefix: run once before the frame is complete (no handler may cover it).
FRAME_PREFIX = frozenset({'COPY_FREE_VARS', 'MAKE_CELL', 'RETURN_GENERATOR'})


def stores(ins: Instruction) -> bool:
    """Whether `ins` binds or unbinds a name (STORE_*/DELETE_*)."""
    return ins.opname.startswith(('STORE_', 'DELETE_'))


def call_consumes(ins: Instruction) -> int:
    """Values of the model stack (see `stack_tags`) a site instruction takes: the callable pair
    of a CALL (PRECALL already took the arguments), NULL/callable/args[/kwargs] of
    CALL_FUNCTION_EX, the manager of BEFORE_WITH."""
    if ins.opname == 'CALL':
        return 2
    if ins.opname == 'CALL_FUNCTION_EX':
        return 3 + (ins.arg & 1)
    return 1


# --------------------------------------------------------------------------------------------
# The value stack, with a tag per slot (abstract interpretation).

# Structural stack values: established by an enclosing construct, alive across statements.
FOR_ITER = 'for_iter'               # iterator of a `for` loop or comprehension loop
ASYNC_FOR_ITER = 'async_for_iter'   # async iterator of an `async for` loop
WITH_EXIT = 'with_exit'             # bound __exit__ / __aexit__ of a `with` / `async with`
EXC_PREV = 'exc_prev'               # exception that was being handled before this handler
EXC = 'exc'                         # exception propagating through a `finally` (exceptional path)
COMP_ACC = 'comp_acc'               # the list/set/dict a comprehension is building
LASTI = 'lasti'                     # instruction offset pushed for a cleanup handler
# The result of a completed call, still on the stack under a later site of the same statement.
OPERAND = 'operand'
TMP = 'tmp'                         # any other value


def stack_tags(code: CodeType) -> tuple[list[Instruction], dict[int, tuple[str, ...]]]:
    """Instructions of `code` and, for each reachable offset, the tags of the stack before it."""
    instrs = instructions(code)
    index = {ins.offset: i for i, ins in enumerate(instrs)}
    handlers = exception_entries(code)
    comp = code.co_name in COMPREHENSION_NAMES
    before: dict[int, tuple[str, ...]] = {}
    work: list[tuple[int, tuple[str, ...]]] = [(0, ())]

    def push(off: int, st: tuple[str, ...]) -> None:
        if off not in before:
            before[off] = st
            work.append((off, st))

    while work:
        off, st = work.pop()
        i = index[off]
        ins = instrs[i]
        name = ins.opname
        for h in handlers:
            if h.start <= off < h.end:
                hst = st[:h.depth] + ((LASTI,) if h.lasti else ()) + (EXC,)
                push(h.target, hst)
        if name in TERMINAL:
            continue
        if jumps(ins):
            push(ins.argval, _effect(ins, st, True, comp))
        if name not in UNCONDITIONAL_JUMPS and i + 1 < len(instrs):
            push(instrs[i + 1].offset, _effect(ins, st, False, comp))
    return instrs, before


def _effect(ins: Instruction, st: tuple[str, ...], jump: bool, comp: bool) -> tuple[str, ...]:
    name = ins.opname
    arg = ins.arg if ins.opcode >= opcode.HAVE_ARGUMENT else None
    s = list(st)
    if name == 'GET_ITER':
        s[-1] = FOR_ITER
        return tuple(s)
    if name == 'GET_AITER':
        s[-1] = ASYNC_FOR_ITER
        return tuple(s)
    if name == 'FOR_ITER' and not jump:
        s[-1] = FOR_ITER
        return tuple(s + [TMP])
    if name in ('BEFORE_WITH', 'BEFORE_ASYNC_WITH'):
        s[-1] = WITH_EXIT
        return tuple(s + [TMP])
    if name == 'PUSH_EXC_INFO':
        s[-1] = EXC_PREV
        return tuple(s + [EXC])
    if name == 'COPY':
        return tuple(s + [s[-arg]])
    if name == 'SWAP':
        s[-1], s[-arg] = s[-arg], s[-1]
        return tuple(s)
    if comp and name in ('BUILD_LIST', 'BUILD_SET', 'BUILD_MAP') and arg == 0 and not s:
        return (COMP_ACC,)
    if name in CALLS:
        n = stack_effect(ins, jump)
        del s[len(s) + n - 1:]
        return tuple(s + [OPERAND])
    n = stack_effect(ins, jump)
    if n < 0:
        del s[len(s) + n:]
    else:
        s.extend([TMP] * n)
    return tuple(s)


# --------------------------------------------------------------------------------------------
# Exception tables (Objects/exception_handling_notes.txt).

class ExceptionEntry(NamedTuple):
    """One entry: instructions in [start, end) (byte offsets) go to `target` with the stack cut
    to `depth` values, then the offset of the raising instruction if `lasti`, then the exception."""
    start: int
    end: int
    target: int
    depth: int
    lasti: bool


def exception_entries(code: CodeType) -> list[ExceptionEntry]:
    return [ExceptionEntry(e.start, e.end, e.target, e.depth, bool(e.lasti))
            for e in dis._parse_exception_table(code)]   # type: ignore[attr-defined]  # private in 3.11


def _varint(value: int, first: bool) -> bytes:
    """6-bit groups, most significant first; bit 6 = more groups follow, bit 7 = entry start."""
    groups = [value & 63]
    value >>= 6
    while value:
        groups.append(value & 63)
        value >>= 6
    groups.reverse()
    out = bytearray(g | 64 for g in groups[:-1]) + bytearray([groups[-1]])
    if first:
        out[0] |= 128
    return bytes(out)


def encode_exception_table(entries: Iterable[ExceptionEntry]) -> bytes:
    """`co_exceptiontable` for `entries` (byte offsets; sorted by start, as CPython searches)."""
    out = bytearray()
    for e in entries:
        out += _varint(e.start // 2, True) + _varint((e.end - e.start) // 2, False)
        out += _varint(e.target // 2, False) + _varint((e.depth << 1) | int(e.lasti), False)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Line tables (Objects/locations.md).

NO_LOCATION = 15                    # entry code: the instructions have no source location


def no_location(units: int) -> bytes:
    """Line-table entries giving `units` code units no location (at most 8 per entry)."""
    out = bytearray()
    while units:
        n = min(8, units)
        out.append(0x80 | (NO_LOCATION << 3) | (n - 1))
        units -= n
    return bytes(out)


def line_table_boundary(table: bytes, unit: int) -> int | None:
    """Byte position in line table `table` of the entry that starts at code unit `unit`, or None
    when `unit` falls inside an entry."""
    pos, at = 0, 0
    while at < unit and pos < len(table):
        at += (table[pos] & 7) + 1
        pos += 1
        while pos < len(table) and not table[pos] & 0x80:
            pos += 1
    return pos if at == unit else None
