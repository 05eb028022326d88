"""Suspension sites and evaluation order: the analysis the lowering (`lowering`) and the
resume-point tables (`resume_points`) share.

Owns which AST nodes are suspension sites (calls, `await`, `yield`, `yield from`, list/set/dict
comprehensions; calls of pure builtins are not), the order in which CPython evaluates an
expression's children, the stable site ids (`_stasis_id`: the node's position path in the
ORIGINAL tree, so that tables, listings and patches name the same site), and the predicates that
decide what the lowering may move.  Counterparts: `lowering` (uses these decisions),
`resume_points` (matches compiled call sites to site ids).  Invariant: `has_site(e)` is true
exactly when evaluating `e` in its own scope can reach a site that the lowering must isolate.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
from typing import Iterable, Iterator

SUSPENSION_NODES = (ast.Call, ast.Await, ast.Yield, ast.YieldFrom,
                    ast.ListComp, ast.SetComp, ast.DictComp)
# Nodes whose compiled code may contain an implicit call (`__exit__`, decorators, `__anext__`).
SITE_NODES = SUSPENSION_NODES + (ast.GeneratorExp, ast.With, ast.AsyncWith, ast.AsyncFor,
                                 ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
SITE_ATTR = '_stasis_id'


# --------------------------------------------------------------------------------------------
# Evaluation order of expression children (in the scope of the expression itself).

def eval_children(node: ast.AST) -> list[ast.expr]:
    """Direct sub-expressions of `node` evaluated in the current scope, in evaluation order."""
    t = type(node)
    if t is ast.Call:
        return [node.func, *node.args, *(k.value for k in node.keywords)]
    if t in (ast.BinOp,):
        return [node.left, node.right]
    if t is ast.Compare:
        return [node.left, *node.comparators]
    if t is ast.BoolOp:
        return list(node.values)
    if t is ast.IfExp:
        return [node.test, node.body, node.orelse]
    if t in (ast.Attribute, ast.Starred, ast.NamedExpr, ast.Await, ast.FormattedValue,
             ast.Yield, ast.YieldFrom, ast.UnaryOp):
        out = [node.operand] if t is ast.UnaryOp else ([node.value] if node.value else [])
        if t is ast.FormattedValue and node.format_spec is not None:
            out.append(node.format_spec)
        return out
    if t is ast.Subscript:
        return [node.value, node.slice]
    if t is ast.Slice:
        return [x for x in (node.lower, node.upper, node.step) if x is not None]
    if t in (ast.Tuple, ast.List, ast.Set):
        return list(node.elts)
    if t is ast.Dict:
        out = []
        for k, v in zip(node.keys, node.values):
            if k is not None:
                out.append(k)
            out.append(v)
        return out
    if t is ast.JoinedStr:
        return list(node.values)
    if t in (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp):
        return [node.generators[0].iter]
    if t is ast.Lambda:
        return [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    return []


# Builtins that never run Python code of their own and have no side effects beyond calling
# the dunders of their arguments (which are entered from C, so never resume points anyway).
# Calls to them are not suspension sites: they stay inline, are re-executed on replay, and are
# stabilized like operators when a later site follows.  Used only for names that the module
# never binds (anywhere, in any scope); see README "pure builtins".
PURE_BUILTINS = frozenset({
    'len', 'isinstance', 'issubclass', 'abs', 'ord', 'chr', 'callable', 'id', 'hash', 'divmod',
    'round', 'int', 'float', 'bool', 'str', 'repr', 'range', 'hex', 'oct', 'bin', 'format',
}) | frozenset(
    # The built-in exception classes: their __new__/__init__ are C and only store the arguments,
    # so `raise ValueError(msg)` / `ExceptionGroup('eg', [TypeError(1)])` stay as written.
    name for name, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))
# What the module being rewritten allows (set by `module_names` while it is rewritten).
_pure_names: frozenset[str] = frozenset()      # the PURE_BUILTINS usable in the module being rewritten
_bound_names: frozenset[str] = frozenset()     # every name the module being rewritten binds


@contextlib.contextmanager
def module_names(pure: frozenset[str], bound: frozenset[str]) -> Iterator[None]:
    """While a module is rewritten: the pure builtins usable in it and every name it binds
    (`scopes.Scopes`), read by `is_pure_call`, `has_site` and `introspects`."""
    global _pure_names, _bound_names
    saved = _pure_names, _bound_names
    _pure_names, _bound_names = pure, bound
    try:
        yield
    finally:
        _pure_names, _bound_names = saved


def is_pure_call(node: ast.AST, pure: frozenset[str] | None = None) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in (_pure_names if pure is None else pure)
            and not any(isinstance(a, ast.Starred) for a in node.args)
            and not node.keywords)


def has_site(node: ast.AST | None) -> bool:
    """Does evaluating `node` in its own scope reach a suspension site?"""
    if node is None:
        return False
    if isinstance(node, SUSPENSION_NODES) and not is_pure_call(node):
        return True
    if isinstance(node, ast.Lambda) and lambda_needs_lowering(node):
        return True                 # hoisted into a def where it is evaluated (x_Lambda)
    return any(has_site(c) for c in eval_children(node))


def _reloadable(e: ast.expr) -> bool:
    """A name or an attribute chain on a name: looked up again, not computed, on replay."""
    while isinstance(e, ast.Attribute):
        e = e.value
    return isinstance(e, ast.Name)


def decorators_stay_inline(decorators: list[ast.expr]) -> bool:
    """Can a decorator list stay as written (v9)?  Each decorator must be reloadable or a call
    of a reloadable callee whose arguments hold no site.  At each decorator call, the values
    below it on the stack are the earlier decorators: its resume row captures the leading call
    results (`operand`) and replays the loads after them, so after the first loaded decorator
    at most one call may follow.  `@name @factory(arg)` (the usual shape) stays as written,
    keeping CPython's evaluation order and line events (`test_trace`)."""
    calls_after_load, loaded = 0, False
    for d in decorators:
        if isinstance(d, ast.Call):
            if not _reloadable(d.func) or any(has_site(x) for x in eval_children(d)):
                return False
            calls_after_load += loaded
        elif _reloadable(d):
            loaded = True
        else:
            return False
    return calls_after_load <= 1


def walrus_targets(exprs: Iterable[ast.AST | None]) -> set[str]:
    out: set[str] = set()
    stack = [e for e in exprs if e is not None]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.NamedExpr):
            out.add(n.target.id)
        stack.extend(eval_children(n))
    return out


# --------------------------------------------------------------------------------------------
# Stable ids: every site node gets its position path in the ORIGINAL tree.

def assign_site_ids(tree: ast.AST) -> None:
    def walk(node: ast.AST, path: str) -> None:
        if isinstance(node, SITE_NODES):
            setattr(node, SITE_ATTR, path)
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        walk(item, f'{path}.{field}[{i}]' if path else f'{field}[{i}]')
            elif isinstance(value, ast.AST):
                walk(value, f'{path}.{field}' if path else field)
    walk(tree, '')


def statement_sites(s: ast.stmt) -> Iterator[ast.AST]:
    """Site nodes evaluated by statement `s` itself (not by statements nested in it)."""
    exprs: list[ast.AST] = []
    for field, value in ast.iter_fields(s):
        if field in ('body', 'orelse', 'finalbody', 'handlers', 'cases'):
            continue
        if isinstance(value, list):
            exprs.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            exprs.append(value)
    if hasattr(s, SITE_ATTR):
        yield s
    stack = exprs[::-1]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.stmt):
            continue
        if hasattr(n, SITE_ATTR):
            yield n
        stack.extend(reversed([c for c in ast.iter_child_nodes(n)]))


# --------------------------------------------------------------------------------------------
# What the lowering may move.

def _sites_in(node: ast.AST) -> int:
    n = 1 if isinstance(node, SUSPENSION_NODES) and not is_pure_call(node) else 0
    return n + sum(_sites_in(c) for c in eval_children(node))


_INTROSPECTION = frozenset({'locals', 'vars', 'dir'})


def introspects(s: ast.stmt) -> bool:
    """Does the statement call locals()/vars()/dir() without arguments (the builtins)?"""
    for n in ast.walk(s):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _INTROSPECTION
                and n.func.id not in _bound_names and not n.args and not n.keywords):
            return True
    return False


def lambda_needs_lowering(e: ast.Lambda) -> bool:
    if any(has_site(d) for d in (*e.args.defaults, *e.args.kw_defaults) if d is not None):
        return False
    for n in ast.walk(e.body):
        if isinstance(n, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)) or \
                (isinstance(n, ast.comprehension) and n.is_async):
            return False
    return _sites_in(e.body) > 1


def comprehension_needs_lowering(e: ast.ListComp | ast.SetComp | ast.DictComp) -> bool:
    """Some part evaluated inside the comprehension holds more than one site (so the
    comprehension frame cannot replay it), and nothing in it forbids moving it into a def."""
    if any(g.is_async for g in e.generators):
        return False
    parts = [e.key, e.value] if isinstance(e, ast.DictComp) else [e.elt]
    parts += [c for g in e.generators for c in g.ifs] + [g.iter for g in e.generators[1:]]
    for p in parts:
        for n in ast.walk(p):
            # (an async comprehension inside makes this one async too: it cannot become a def)
            if isinstance(n, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)) or \
                    (isinstance(n, ast.comprehension) and n.is_async):
                return False
    if isinstance(e, ast.DictComp):
        # key and value share one statement-free evaluation: count them together
        return _sites_in(e.key) + _sites_in(e.value) > 1 or any(_sites_in(p) > 1 for p in parts[2:])
    return any(_sites_in(p) > 1 for p in parts)
