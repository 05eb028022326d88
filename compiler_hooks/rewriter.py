"""The resumable form: rewrites a module's AST so that every suspension site is replayable.

Counterparts: `resume_points` (reads the compiled result and records each resume point),
`hook` (compiles selected modules through `rewrite_module`), `listing` (`stasis rewrite`).
The work is split by concern: `sites` (what a suspension site is, evaluation order, site ids),
`scopes` (stable names from `symtable`), `lowering` (the transformation).  Invariant kept by the
lowering: in a rewritten function body, every value that sits on the frame's value stack while
a suspension site (call, `await`, `yield`, `yield from`, list/set/dict comprehension) runs is
either a structural value (for-iterator, `with` exit, saved exception: see resume_points), or the
result of an earlier call of the same statement left for the next operator (an `operand`:
`f(a) + g(b)`, decorator lists), or is recomputed without side effects by re-executing the
statement from its first instruction (or from just after the call that produced the operand).
Otherwise a statement holds at most one site per execution path.  Evaluation order and
short-circuiting are kept; see README.md for the documented deviations.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from types import CodeType

# The parts are imported when a module is rewritten, not with this module: the hook and the cache
# import it for REWRITER_VERSION on every start-up, and most start-ups find everything in the cache.

__all__ = ['REWRITER_VERSION', 'rewrite_tree', 'rewrite_module']

# Bump whenever the output of the rewriter changes: it is part of the cache key (cache.py also
# hashes every module of this package, so an edit without a bump never reads stale entries).
REWRITER_VERSION = 11


def rewrite_tree(tree: ast.Module, source: str | bytes, filename: str) -> ast.Module:
    """Rewrite a parsed module in place into the resumable form; returns it.  Sets
    `tree._stasis_pure`, the pure builtins the lowering relied on (for the table builder)."""
    import ast
    from .lowering import lower_module_body
    from .scopes import Scopes
    from .sites import assign_site_ids, module_names
    assign_site_ids(tree)
    scopes = Scopes(source, filename)
    pure = scopes.pure_builtins()
    tree._stasis_pure = pure                        # type: ignore[attr-defined]  # read by resume_points
    with module_names(pure, frozenset(scopes.bound)):
        tree.body = lower_module_body(tree.body, scopes)
    ast.fix_missing_locations(tree)
    return tree


def rewrite_module(source: str | bytes, filename: str, *, optimize: int = -1) -> tuple[CodeType, ast.Module]:
    """Compile `source` into resumable code: returns `(code, tree)`.  Every code object
    compiled from the module carries its resume table (see resume_points.attach_tables)."""
    import ast
    from .resume_points import attach_tables
    tree = ast.parse(source, filename, 'exec')
    rewrite_tree(tree, source, filename)
    code = compile(tree, filename, 'exec', dont_inherit=True, optimize=optimize)
    return attach_tables(code, tree), tree
