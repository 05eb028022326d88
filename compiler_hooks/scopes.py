"""Scopes of the module being rewritten, from `symtable`: which names of each function are plain
fast locals (no cell, no global, no nonlocal), and which names the module binds anywhere.

Counterpart: `lowering` (a plain fast local is recomputed identically on replay, so it need not be
copied into a temporary; a builtin the module never rebinds may be treated as pure).  Invariant:
when the source cannot be analysed (`ok` false) no name is stable and no builtin is pure, which is
always safe (more temporaries, never a wrong replay).
"""
from __future__ import annotations

import ast
import importlib.util
import symtable

from .sites import PURE_BUILTINS


class Scopes:
    """Maps FunctionDef nodes to the set of their plain fast locals (from `symtable`)."""

    def __init__(self, source: str | bytes, filename: str) -> None:
        self._by_key: dict[tuple[str, int], frozenset[str] | None] = {}
        self.bound: set[str] = set()
        self.ok = False
        try:
            text = source if isinstance(source, str) else importlib.util.decode_source(source)
            top = symtable.symtable(text, filename, 'exec')
        except (SyntaxError, ValueError, UnicodeDecodeError):
            return
        self._collect(top)
        self.ok = True

    def pure_builtins(self) -> frozenset[str]:
        return PURE_BUILTINS - self.bound if self.ok else frozenset()

    def _collect(self, table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            if sym.is_assigned() or sym.is_imported() or sym.is_parameter() or sym.is_namespace() \
                    or sym.is_declared_global():
                self.bound.add(sym.get_name())
        for child in table.get_children():
            if child.get_type() == 'function':
                key = (child.get_name(), child.get_lineno())
                stable = self._stable(child)
                # Two scopes with the same name on the same line: give up (no stable names).
                self._by_key[key] = None if key in self._by_key else stable
            self._collect(child)

    @staticmethod
    def _stable(t: symtable.SymbolTable) -> frozenset[str]:
        cells = {s.get_name() for c in t.get_children() for s in c.get_symbols() if s.is_free()}
        return frozenset(s.get_name() for s in t.get_symbols()
                         if s.is_local() and not s.is_global() and not s.is_nonlocal()
                         and not s.is_free() and s.get_name() not in cells)

    def stable_names(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
        return self._by_key.get((fn.name, fn.lineno)) or frozenset()

    def stable_names_of(self, name: str, lineno: int) -> frozenset[str]:
        return self._by_key.get((name, lineno)) or frozenset()
