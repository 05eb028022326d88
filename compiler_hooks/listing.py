"""The listing of the resumable form (`stasis rewrite FILE`): the rewritten source, each statement
preceded by comments naming its resume points and the sites that are not resumable.

Counterparts: `rewriter` (the code and tree it lists), `resume_points` (the rows it names).
Invariant: it only reads; the code it lists is exactly what `rewrite_module` returns.
"""
from __future__ import annotations

import ast

from .resume_points import iter_tables
from .rewriter import REWRITER_VERSION, rewrite_module
from .sites import SITE_ATTR, statement_sites


class _MarkingUnparser(ast._Unparser):      # type: ignore[name-defined]
    def __init__(self, notes: dict[int, list[str]] | None = None, **kw) -> None:
        super().__init__(**kw)
        self._notes = notes or {}

    def traverse(self, node):
        if isinstance(node, ast.stmt):
            for note in self._notes.get(id(node), ()):
                self.fill('# ' + note)
        super().traverse(node)




def format_resumable(source: str, filename: str) -> str:
    """Source-like text of the resumable form, each statement preceded by comments naming the
    resume points it holds (`resume <id>` with the captured stack values) and the suspension sites
    that are not resumable (`NOT resumable <id>: reason`)."""
    code, tree = rewrite_module(source, filename)
    rows: dict[str, list] = {}
    for _co, table in iter_tables(code):
        for row in table:
            rows.setdefault(row.id, []).append(row)
    notes: dict[int, list[str]] = {}
    for s in ast.walk(tree):
        if not isinstance(s, ast.stmt):
            continue
        lines = []
        for site in statement_sites(s):
            for row in rows.get(getattr(site, SITE_ATTR), ()):
                lines.append(row.describe())
        if lines:
            notes[id(s)] = lines
    header = (f'# stasis rewrite {filename} (rewriter v{REWRITER_VERSION})\n'
              '# hidden names start with "."; "resume" lines list the resume points of the next\n'
              '# statement: id, bytecode offsets and the values the engine captures from the stack\n'
              '# there (structural values of enclosing constructs; "operand": a call result).\n')
    return header + _MarkingUnparser(notes).visit(tree) + '\n'
