"""The lowering: function and module bodies rewritten into the resumable form.

Owns the transformation itself (A-normal form in CPython's evaluation order, hidden temporaries
and their lifetimes, short-circuit forms, lowered comprehensions and lambdas): README.md "Lowering
rules".  Counterparts: `sites` (what is a site and what may move), `scopes` (stable names),
`rewriter` (runs it on a parsed module).  Invariant: in a lowered body, every value on the
frame's value stack while a suspension site runs is structural, an `operand` left by an earlier
call of the same statement, or recomputed without side effects by replaying the statement.
"""
from __future__ import annotations

import ast
from typing import Callable

from .scopes import Scopes
from .sites import (SITE_ATTR, comprehension_needs_lowering, decorators_stay_inline,
                    eval_children, has_site, introspects, is_pure_call, lambda_needs_lowering,
                    walrus_targets)

# Hidden names start with '.', which no Python source can spell (CPython's own `.0` does the
# same); `compile()` accepts them from an AST.
TEMP_PREFIX = '.t'
REUSE_ATTR = '_stasis_reuse'        # on a lowered Call: a temporary it consumes (x_Call)


def _like(new: ast.AST, old: ast.AST) -> ast.AST:
    ast.copy_location(new, old)
    sid = getattr(old, SITE_ATTR, None)
    if sid is not None:
        setattr(new, SITE_ATTR, sid)
    return new


def _load(name: str, ref: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), ref)


def _store(name: str, ref: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=name, ctx=ast.Store()), ref)


_COMPOUND = (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try, ast.TryStar,
             ast.Match, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_terminal(stmts: list[ast.stmt]) -> bool:
    return bool(stmts) and isinstance(stmts[-1], (ast.Return, ast.Raise, ast.Break, ast.Continue))


Res = tuple[ast.expr, bool]        # (residual expression, residual still contains a site inline)


class _Lowerer:
    """Lowers one scope (a function body or the module body) into the resumable form."""

    def __init__(self, scopes: Scopes, stable: frozenset[str], in_function: bool = True) -> None:
        self.scopes = scopes
        self.stable = stable
        self.in_function = in_function
        self.unstable: set[str] = set()
        self.ntemp = 0
        self.blocks: list[list[str]] = []
        # The expression a statement evaluates first, on an empty stack (see x_BinOp).
        self.bottom: ast.expr | None = None

    # ---- temporaries -----------------------------------------------------------------------
    def new_temp(self) -> str:
        name = f'{TEMP_PREFIX}{self.ntemp}'
        self.ntemp += 1
        self.blocks[-1].append(name)
        return name

    def assign_temp(self, value: ast.expr, pre: list[ast.stmt], reuse: bool = True) -> ast.Name:
        # A call that consumes a temporary of its own (`.t0.m(x)`, `f(.t0)`) stores its result
        # in that temporary: `.t0 = .t0.m(x)` (see x_Call).
        name = (getattr(value, REUSE_ATTR, None) if reuse else None) or self.new_temp()
        pre.append(ast.copy_location(ast.Assign(targets=[_store(name, value)], value=value), value))
        return _load(name, value)

    def is_stable(self, e: ast.expr) -> bool:
        if isinstance(e, ast.Constant):
            return True
        if isinstance(e, ast.Name):
            return e.id.startswith(TEMP_PREFIX) or (e.id in self.stable and e.id not in self.unstable)
        return False

    def is_replay_stable(self, e: ast.expr) -> bool:
        """Recomputed identically when the statement is replayed: stable leaves combined by
        comparisons, `not` and `and`/`or` (a test's value is consumed before the next site,
        so it need not be kept; it only has to come out the same on replay)."""
        if self.is_stable(e):
            return True
        if isinstance(e, ast.Compare):
            return all(self.is_stable(x) for x in (e.left, *e.comparators))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
            return self.is_replay_stable(e.operand)
        if isinstance(e, ast.BoolOp):
            return all(self.is_replay_stable(v) for v in e.values)
        return False

    def lift(self, r: Res, pre: list[ast.stmt]) -> ast.expr:
        """The value of `r` with no site left inline."""
        e, s = r
        return self.assign_temp(e, pre) if s else e

    def stabilize(self, r: Res, pre: list[ast.stmt]) -> ast.expr:
        """The value of `r`, computed now and unchanged by whatever is evaluated later."""
        e, s = r
        return self.assign_temp(e, pre) if (s or not self.is_stable(e)) else e

    def sub_block(self, fn: Callable[[list[ast.stmt]], None]) -> list[ast.stmt]:
        """Statements built by `fn`, followed by deletion of the temporaries they bound."""
        self.blocks.append([])
        out: list[ast.stmt] = []
        fn(out)
        temps = self.blocks.pop()
        if temps and not _is_terminal(out):
            out.append(self._delete(temps, out[-1] if out else None))
        return out or [ast.Pass()]

    @staticmethod
    def _delete(temps: list[str], ref: ast.AST | None) -> ast.Delete:
        node = ast.Delete(targets=[ast.Name(id=t, ctx=ast.Del()) for t in temps])
        if ref is not None:
            ast.copy_location(node, ref)
            for t in node.targets:
                ast.copy_location(t, ref)
        return node

    # ---- expressions -----------------------------------------------------------------------
    def expr(self, e: ast.expr, pre: list[ast.stmt]) -> Res:
        if not has_site(e):
            return e, False
        return getattr(self, 'x_' + type(e).__name__, self.x_generic)(e, pre)

    def seq(self, items: list[ast.expr], pre: list[ast.stmt], *, lift: bool = False,
            fresh: list[str] | None = None) -> list[Res]:
        """Lower `items`, evaluated in this order; values before a later site are stabilized.
        `fresh` collects the temporaries made here that hold a whole item (used once: there)."""
        later = [False] * len(items)
        acc = False
        for i in range(len(items) - 1, -1, -1):
            later[i] = acc
            acc = acc or has_site(items[i])
        out: list[Res] = []
        for item, lat in zip(items, later):
            star = isinstance(item, ast.Starred)
            if (lat or lift) and not star:
                self.bottom = item          # it becomes the value of `.tN = item`
            r = self.expr(item.value if star else item, pre)
            low = r[0]
            if lat:
                r = (self.stabilize(r, pre), False)
            elif lift:
                r = (self.lift(r, pre), False)
            if fresh is not None and r[0] is not low:
                fresh.append(r[0].id)
            if star:
                r = (_like(ast.Starred(value=r[0], ctx=item.ctx), item), r[1])
            out.append(r)
        return out

    def x_generic(self, e: ast.expr, pre: list[ast.stmt]) -> Res:
        raise NotImplementedError(type(e).__name__)   # every node with children is handled below

    def x_Call(self, e: ast.Call, pre: list[ast.stmt]) -> Res:
        if is_pure_call(e):
            rs = self.seq(list(e.args), pre)
            return _like(ast.Call(func=e.func, args=[r for r, _ in rs], keywords=[]), e), any(s for _, s in rs)
        args_site = any(has_site(a) for a in e.args) or any(has_site(k.value) for k in e.keywords)
        func = e.func
        fresh: list[str] = []
        if isinstance(func, ast.Attribute):
            # The receiver is evaluated in order; the method lookup stays at the call, so the
            # call still compiles to LOAD_METHOD (no bound-method object).
            recv = self.expr(func.value, pre)
            if not args_site:
                recv_e = self.lift(recv, pre)
            elif isinstance(recv[0], ast.Name) and not recv[1]:
                recv_e = recv[0]
            else:
                recv_e = self.stabilize(recv, pre)
            if recv_e is not recv[0]:
                fresh.append(recv_e.id)
            func = _like(ast.Attribute(value=recv_e, attr=func.attr, ctx=ast.Load()), func)
        elif args_site and isinstance(func, ast.Name):
            pass            # callee names are looked up at the call (documented deviation)
        elif args_site:
            func = self.stabilize(self.expr(func, pre), pre)
        else:
            func = self.lift(self.expr(func, pre), pre)
        items = [*e.args, *(k.value for k in e.keywords)]
        rs = self.seq(items, pre, lift=True, fresh=fresh)
        args = []
        for a, (r, _) in zip(e.args, rs[:len(e.args)]):
            args.append(r)
        kws = [_like(ast.keyword(arg=k.arg, value=r), k) for k, (r, _) in zip(e.keywords, rs[len(e.args):])]
        call = _like(ast.Call(func=func, args=args, keywords=kws), e)
        if fresh:
            # A temporary made here for the receiver or an argument is read once, by this call,
            # before the call runs: if the call is lifted in turn, its result can go into that
            # temporary (one slot, one `del` less per chain link; the consumed value is released
            # when the call returns, as CPython pops it).
            setattr(call, REUSE_ATTR, fresh[0])
        return call, True

    def x_Starred(self, e: ast.Starred, pre: list[ast.stmt]) -> Res:
        r, s = self.expr(e.value, pre)
        return _like(ast.Starred(value=r, ctx=e.ctx), e), s

    def x_Await(self, e: ast.Await, pre: list[ast.stmt]) -> Res:
        # Like `yield`: a coroutine suspended in `await` is rebuilt in place (ARCHITECTURE §4,
        # CPYTHON311 §6) with the awaited object pushed back, so the operand is not lifted; a
        # call in it (`await f(x)`) creates the awaitable and is the replayable site before it.
        return _like(ast.Await(value=self.expr(e.value, pre)[0]), e), True

    def x_Yield(self, e: ast.Yield, pre: list[ast.stmt]) -> Res:
        # The operand is left as written: a generator suspended at `yield` is rebuilt in place
        # (at YIELD_VALUE, resume_points), not replayed, and temporaries would keep the yielded
        # value -- or what it was computed from -- alive while the generator is suspended
        # (concurrent.futures relies on that not happening).  Nested calls inside the operand
        # are therefore not all resume points.
        return _like(ast.Yield(value=e.value), e), True

    def x_YieldFrom(self, e: ast.YieldFrom, pre: list[ast.stmt]) -> Res:
        return _like(ast.YieldFrom(value=self.expr(e.value, pre)[0]), e), True     # as x_Await

    def _comp_iter(self, e: ast.AST, pre: list[ast.stmt], lift: bool) -> tuple[ast.AST, bool]:
        gen0 = e.generators[0]
        r = self.expr(gen0.iter, pre)
        it = self.lift(r, pre) if lift else r[0]
        new0 = ast.comprehension(target=gen0.target, iter=it, ifs=gen0.ifs, is_async=gen0.is_async)
        kw = {f: getattr(e, f) for f in e._fields if f != 'generators'}
        new = _like(type(e)(generators=[new0, *e.generators[1:]], **kw), e)
        return new, (r[1] and not lift)

    def x_ListComp(self, e: ast.ListComp, pre: list[ast.stmt]) -> Res:
        if self.in_function and comprehension_needs_lowering(e):
            return self._comprehension_function(e, pre), True
        return self._comp_iter(e, pre, True)[0], True

    def _comprehension_function(self, e: ast.ListComp | ast.SetComp | ast.DictComp,
                                pre: list[ast.stmt]) -> ast.expr:
        """`[E for x in I if C]` whose parts hold nested sites becomes a nested function with
        the same name, qualname, first line and `.0` parameter as CPython's comprehension
        function, lowered like any function body:

            def <listcomp>(.0):
                .r = []; .a = .r.append
                for x in .0:
                    if C: .a(E)
                return .r
            <listcomp>(I)

        Scoping is kept (loop variables local to it, the rest closed over); comprehensions
        with walrus, await or async loops are left alone."""
        kind = type(e)
        name = {ast.ListComp: '<listcomp>', ast.SetComp: '<setcomp>', ast.DictComp: '<dictcomp>'}[kind]
        sid = getattr(e, SITE_ATTR, '')
        bracket = dict(lineno=e.lineno, col_offset=e.col_offset, end_lineno=e.lineno,
                       end_col_offset=e.col_offset + 1)

        def at(node: ast.AST, ref: ast.AST) -> ast.AST:
            return ast.copy_location(node, ref)

        acc, add, key = '.r', '.a', '.k'
        if kind is ast.DictComp:
            inner: list[ast.stmt] = [
                at(ast.Assign(targets=[_store(key, e.key)], value=e.key), e.key),
                at(ast.Assign(targets=[at(ast.Subscript(value=_load(acc, e.value), slice=_load(key, e.key),
                                                        ctx=ast.Store()), e.value)], value=e.value), e.value)]
        else:
            call = ast.Call(func=ast.Name(id=add, ctx=ast.Load(), **bracket), args=[e.elt], keywords=[], **bracket)
            setattr(call, SITE_ATTR, f'{sid}.add')
            inner = [at(ast.Expr(value=call), e.elt)]
        for i in range(len(e.generators) - 1, -1, -1):
            g = e.generators[i]
            body = inner
            for cond in reversed(g.ifs):
                body = [at(ast.If(test=cond, body=body, orelse=[]), cond)]
            it = _load('.0', g.iter) if i == 0 else g.iter
            inner = [at(ast.For(target=g.target, iter=it, body=body, orelse=[], type_comment=None), g.target)]
        empty = {ast.ListComp: ast.List(elts=[], ctx=ast.Load()), ast.SetComp: ast.Set(elts=[]), ast.DictComp: ast.Dict(keys=[], values=[])}[kind]
        head: list[ast.stmt] = [at(ast.Assign(targets=[_store(acc, e)], value=at(empty, e)), e)]
        if kind is ast.ListComp:
            head.append(at(ast.Assign(targets=[_store(add, e)], value=at(ast.Attribute(
                value=_load(acc, e), attr='append', ctx=ast.Load()), e)), e))
        elif kind is ast.SetComp:
            head.append(at(ast.Assign(targets=[_store(add, e)], value=at(ast.Attribute(
                value=_load(acc, e), attr='add', ctx=ast.Load()), e)), e))
        fbody = head + inner + [at(ast.Return(value=_load(acc, e)), e)]
        args = ast.arguments(posonlyargs=[], args=[ast.arg(arg='.0')], vararg=None, kwonlyargs=[],
                             kw_defaults=[], kwarg=None, defaults=[])
        stable = self.scopes.stable_names_of(name[1:-1], e.lineno)
        lowered = _Lowerer(self.scopes, stable).block(fbody)
        fdef = at(ast.FunctionDef(name=name, args=args, body=lowered, decorator_list=[], returns=None,
                                  type_comment=None), e)
        first = self.lift(self.expr(e.generators[0].iter, pre), pre)
        pre.append(fdef)
        self.blocks[-1].append(name)            # the function's local name dies with the temps
        return _like(ast.Call(func=_load(name, e), args=[first], keywords=[]), e)

    x_SetComp = x_DictComp = x_ListComp

    def x_GeneratorExp(self, e: ast.GeneratorExp, pre: list[ast.stmt]) -> Res:
        # Creating a generator runs none of its body: only its first iterable is a site.
        return self._comp_iter(e, pre, False)

    def x_Lambda(self, e: ast.Lambda, pre: list[ast.stmt]) -> Res:
        if self.in_function and lambda_needs_lowering(e):
            return self._lambda_function(e, pre), False
        a = e.args
        kwd = [d for d in a.kw_defaults if d is not None]
        rs = self.seq([*a.defaults, *kwd], pre)
        it = iter(rs)
        defaults = [next(it)[0] for _ in a.defaults]
        kw_defaults = [None if d is None else next(it)[0] for d in a.kw_defaults]
        args = ast.arguments(posonlyargs=a.posonlyargs, args=a.args, vararg=a.vararg,
                             kwonlyargs=a.kwonlyargs, kw_defaults=kw_defaults, kwarg=a.kwarg,
                             defaults=defaults)
        return _like(ast.Lambda(args=args, body=e.body), e), any(s for _, s in rs)

    def _lambda_function(self, e: ast.Lambda, pre: list[ast.stmt]) -> ast.expr:
        """`lambda a: g(h(a))` whose body holds nested sites becomes `def <lambda>(a): return
        g(h(a))` (same name, qualname, first line, no docstring), lowered like any function
        and bound to a temporary where the lambda was evaluated."""
        body = [ast.copy_location(ast.Return(value=e.body), e.body)]
        stable = self.scopes.stable_names_of('lambda', e.lineno)
        lowered = _Lowerer(self.scopes, stable).block(body)
        fdef = ast.copy_location(ast.FunctionDef(name='<lambda>', args=e.args, body=lowered,
                                                 decorator_list=[], returns=None, type_comment=None), e)
        pre.append(fdef)
        t = self.assign_temp(_load('<lambda>', e), pre)
        pre.append(self._delete(['<lambda>'], e))
        return t

    def x_NamedExpr(self, e: ast.NamedExpr, pre: list[ast.stmt]) -> Res:
        r, s = self.expr(e.value, pre)
        return _like(ast.NamedExpr(target=e.target, value=r), e), s

    def x_Attribute(self, e: ast.Attribute, pre: list[ast.stmt]) -> Res:
        r, s = self.expr(e.value, pre)
        return _like(ast.Attribute(value=r, attr=e.attr, ctx=e.ctx), e), s

    def x_Subscript(self, e: ast.Subscript, pre: list[ast.stmt]) -> Res:
        (v, s1), (i, s2) = self.seq([e.value, e.slice], pre)
        return _like(ast.Subscript(value=v, slice=i, ctx=e.ctx), e), s1 or s2

    def x_Slice(self, e: ast.Slice, pre: list[ast.stmt]) -> Res:
        parts = [e.lower, e.upper, e.step]
        rs = iter(self.seq([p for p in parts if p is not None], pre))
        new = [None if p is None else next(rs) for p in parts]
        vals = [None if n is None else n[0] for n in new]
        return _like(ast.Slice(lower=vals[0], upper=vals[1], step=vals[2]), e), \
            any(n[1] for n in new if n is not None)

    def x_BinOp(self, e: ast.BinOp, pre: list[ast.stmt]) -> Res:
        if (self.bottom is e and isinstance(e.left, (ast.Call, ast.Await)) and has_site(e.left)
                and has_site(e.right)):
            # `f(a) + g(b)` evaluated first in its statement: f's result stays on the stack
            # while g runs, as an `operand` of g's resume row (resume_points.OPERAND), captured
            # from its slot.  A temporary here would cost a recursive function like
            # `fib(n - 1) + fib(n - 2)` its first non-argument local: ~9% more instructions.
            a, _ = self.expr(e.left, pre)
            probe: list[ast.stmt] = []
            b, s2 = self.expr(e.right, probe)
            if probe:   # the right operand needs statements of its own: after the left call
                a = self.assign_temp(a, pre)
                pre.extend(probe)
                return _like(ast.BinOp(left=a, op=e.op, right=b), e), s2
            return _like(ast.BinOp(left=a, op=e.op, right=b), e), True
        (a, s1), (b, s2) = self.seq([e.left, e.right], pre)
        return _like(ast.BinOp(left=a, op=e.op, right=b), e), s1 or s2

    def x_UnaryOp(self, e: ast.UnaryOp, pre: list[ast.stmt]) -> Res:
        r, s = self.expr(e.operand, pre)
        return _like(ast.UnaryOp(op=e.op, operand=r), e), s

    def _elts(self, e: ast.expr, pre: list[ast.stmt]) -> Res:
        rs = self.seq(list(e.elts), pre)
        kw = {'ctx': e.ctx} if hasattr(e, 'ctx') else {}
        return _like(type(e)(elts=[r for r, _ in rs], **kw), e), any(s for _, s in rs)

    x_Tuple = x_List = x_Set = _elts

    def x_Dict(self, e: ast.Dict, pre: list[ast.stmt]) -> Res:
        rs = iter(self.seq(eval_children(e), pre))
        keys: list[ast.expr | None] = []
        values: list[ast.expr] = []
        s = False
        for k in e.keys:
            if k is None:
                keys.append(None)
            else:
                r = next(rs)
                keys.append(r[0])
                s = s or r[1]
            r = next(rs)
            values.append(r[0])
            s = s or r[1]
        return _like(ast.Dict(keys=keys, values=values), e), s

    def x_JoinedStr(self, e: ast.JoinedStr, pre: list[ast.stmt]) -> Res:
        values = list(e.values)
        out: list[ast.expr] = []
        s_any = False
        for i, v in enumerate(values):
            later = any(has_site(w) for w in values[i + 1:])
            if isinstance(v, ast.Constant):
                out.append(v)
                continue
            rv, s = self.expr(v.value, pre)
            spec = v.format_spec
            if spec is not None and has_site(spec):
                rv = self.stabilize((rv, s), pre)
                s = False
                spec, s2 = self.expr(spec, pre)
                s = s or s2
            fv = _like(ast.FormattedValue(value=rv, conversion=v.conversion, format_spec=spec), v)
            if later:
                # The formatting itself happens before the later site, as in the original.
                t = self.assign_temp(_like(ast.JoinedStr(values=[fv]), v), pre)
                fv = _like(ast.FormattedValue(value=t, conversion=-1, format_spec=None), v)
                s = False
            out.append(fv)
            s_any = s_any or s
        return _like(ast.JoinedStr(values=out), e), s_any

    def x_FormattedValue(self, e: ast.FormattedValue, pre: list[ast.stmt]) -> Res:
        return self.x_JoinedStr(_like(ast.JoinedStr(values=[e]), e), pre)

    def x_IfExp(self, e: ast.IfExp, pre: list[ast.stmt]) -> Res:
        t = self.expr(e.test, pre)
        test = t[0] if not t[1] and self.is_replay_stable(t[0]) else self.stabilize(t, pre)
        body_pre: list[ast.stmt] = []
        else_pre: list[ast.stmt] = []
        mark = len(self.blocks[-1])
        body = self.expr(e.body, body_pre)
        orelse = self.expr(e.orelse, else_pre)
        if not body_pre and not else_pre:
            return _like(ast.IfExp(test=test, body=body[0], orelse=orelse[0]), e), body[1] or orelse[1]
        # Lifting happened inside a branch: rebuild as an `if` statement (branches stay lazy).
        del self.blocks[-1][mark:]
        result = self.new_temp()

        def branch(sub: ast.expr) -> list[ast.stmt]:
            def fill(out: list[ast.stmt]) -> None:
                r = self.expr(sub, out)
                out.append(ast.copy_location(ast.Assign(targets=[_store(result, sub)], value=r[0]), sub))
            return self.sub_block(fill)

        pre.append(ast.copy_location(ast.If(test=test, body=branch(e.body), orelse=branch(e.orelse)), e))
        return _load(result, e), False

    def x_BoolOp(self, e: ast.BoolOp, pre: list[ast.stmt]) -> Res:
        first = self.expr(e.values[0], pre)
        rest = e.values[1:]
        if not any(has_site(v) for v in rest):
            return _like(ast.BoolOp(op=e.op, values=[first[0], *rest]), e), first[1]
        # Inline form: only the last operand holds sites, no lifting is needed inside it, and
        # the operands before it are stable (replay re-tests them).
        if not any(has_site(v) for v in rest[:-1]) and all(self.is_replay_stable(v) for v in rest[:-1]):
            head = first[0] if not first[1] and self.is_replay_stable(first[0]) else self.stabilize(first, pre)
            probe: list[ast.stmt] = []
            mark = len(self.blocks[-1])
            last = self.expr(rest[-1], probe)
            if not probe:
                return _like(ast.BoolOp(op=e.op, values=[head, *rest[:-1], last[0]]), e), last[1]
            del self.blocks[-1][mark:]
            first = (head, False)
        # If-chain: `.r = a; if .r: .r = b; ...` (`if not .r` for `or`).
        head_e = first[0]
        if isinstance(head_e, ast.Name) and head_e.id.startswith(TEMP_PREFIX) and not first[1]:
            result = head_e.id              # already our own temporary: it becomes the result
        else:
            result = self.new_temp()
            pre.append(ast.copy_location(ast.Assign(targets=[_store(result, e)], value=head_e), e.values[0]))
        tail = pre
        for v in rest:
            test: ast.expr = _load(result, v)
            if isinstance(e.op, ast.Or):
                test = ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=test), v)

            def fill(out: list[ast.stmt], v: ast.expr = v) -> None:
                r = self.expr(v, out)
                out.append(ast.copy_location(ast.Assign(targets=[_store(result, v)], value=r[0]), v))
            body = self.sub_block(fill)
            node = ast.copy_location(ast.If(test=test, body=body, orelse=[]), v)
            tail.append(node)
            tail = body         # later operands are evaluated only if this one let them
        return _load(result, e), False

    def x_Compare(self, e: ast.Compare, pre: list[ast.stmt]) -> Res:
        comps = e.comparators
        (left, ls), (c0, cs) = self.seq([e.left, comps[0]], pre)
        if not any(has_site(c) for c in comps[1:]):
            return _like(ast.Compare(left=left, ops=e.ops, comparators=[c0, *comps[1:]]), e), ls or cs
        prev = self.stabilize((left, ls), pre)
        cur = self.stabilize((c0, cs), pre)
        # Inline form: only the last operand holds sites and needs no lifting; the operands
        # between are stable (replay recomputes the comparisons before it).
        if not any(has_site(c) for c in comps[1:-1]) and all(self.is_stable(c) for c in comps[1:-1]):
            probe: list[ast.stmt] = []
            mark = len(self.blocks[-1])
            last = self.expr(comps[-1], probe)
            if not probe:
                return _like(ast.Compare(left=prev, ops=e.ops,
                                         comparators=[cur, *comps[1:-1], last[0]]), e), last[1]
            del self.blocks[-1][mark:]
        # If-chain: `.r = a < b; if .r: .r = b < c ...`, each operand evaluated once and lazily.
        result = self.new_temp()
        pre.append(ast.copy_location(ast.Assign(
            targets=[_store(result, e)],
            value=_like(ast.Compare(left=prev, ops=[e.ops[0]], comparators=[cur]), e)), e))
        tail: list[ast.stmt] = pre
        for op, c in zip(e.ops[1:], comps[1:]):
            box: list[ast.expr] = [cur]

            def fill(out: list[ast.stmt], op: ast.cmpop = op, c: ast.expr = c, left: ast.expr = cur) -> None:
                r = self.expr(c, out)
                box[0] = self.stabilize(r, out) if c is not comps[-1] else r[0]
                out.append(ast.copy_location(ast.Assign(
                    targets=[_store(result, c)],
                    value=_like(ast.Compare(left=left, ops=[op], comparators=[box[0]]), e)), c))
            body = self.sub_block(fill)
            cur = box[0]
            tail.append(ast.copy_location(ast.If(test=_load(result, c), body=body, orelse=[]), c))
            # The next comparison still reads `cur`: nest it before this block's deletions.
            tail = _Inserter(body, len(body) - 1) if isinstance(body[-1], ast.Delete) else body
        return _load(result, e), False

    # ---- statements ------------------------------------------------------------------------
    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            out.extend(self.stmt(s))
        return out or [ast.Pass()]

    def stmt(self, s: ast.stmt) -> list[ast.stmt]:
        m = getattr(self, 's_' + type(s).__name__, None)
        if m is None:
            return [s]
        if not isinstance(s, _COMPOUND) and introspects(s):
            return [s]      # locals()/vars()/dir() must not see temporaries: left as written
        mark = self.ntemp
        self.blocks.append([])
        saved = self.unstable
        try:
            out = m(s)
        finally:
            self.unstable = saved
        temps = self.blocks.pop()
        self.ntemp = mark
        if not temps:
            return out
        last = out[-1]
        if isinstance(s, (ast.If, ast.With, ast.AsyncWith)) and isinstance(last, type(s)):
            # Header temporaries die as soon as the header is done: at the start of the branches.
            last.body.insert(0, self._delete(temps, s))
            if isinstance(last, ast.If):
                last.orelse = [self._delete(temps, s)] + (last.orelse or [])
            return out
        if isinstance(s, _COMPOUND) or isinstance(last, ast.Return):
            # After the compound statement; a return frees the frame anyway.
            return out if _is_terminal(out) else out + [self._delete(temps, s)]
        # Simple statement: temporaries are released on the exceptional path too, as CPython
        # releases its value stack while unwinding (zero-cost `try` in 3.11; bare `raise`
        # re-raises with the traceback unchanged).  The normal path's `del` is the last
        # statement *inside* the `try`: then the jump over the handler goes straight to the
        # next statement, and when that is the back edge of a loop the compiler threads the two
        # jumps into one (a statement ending a loop body costs no jump at all).
        clear = [ast.copy_location(ast.Assign(targets=[_store(t, s) for t in temps],
                                              value=ast.copy_location(ast.Constant(None), s)), s),
                 self._delete(temps, s), ast.copy_location(ast.Raise(exc=None, cause=None), s)]
        handler = ast.copy_location(ast.ExceptHandler(type=None, name=None, body=clear), s)
        body = out if _is_terminal(out) else out + [self._delete(temps, s)]
        return [ast.copy_location(ast.Try(body=body, handlers=[handler], orelse=[], finalbody=[]), s)]

    def header(self, s: ast.stmt, exprs: list[ast.expr | None]) -> None:
        self.unstable = walrus_targets(exprs)

    def s_Expr(self, s: ast.Expr) -> list[ast.stmt]:
        if not has_site(s.value):
            return [s]
        self.header(s, [s.value])
        self.bottom = s.value
        pre: list[ast.stmt] = []
        r, _ = self.expr(s.value, pre)
        return pre + [_like(ast.Expr(value=r), s)]

    def s_Return(self, s: ast.Return) -> list[ast.stmt]:
        if not has_site(s.value):
            return [s]
        self.header(s, [s.value])
        self.bottom = s.value
        pre: list[ast.stmt] = []
        r, _ = self.expr(s.value, pre)
        return pre + [_like(ast.Return(value=r), s)]

    def s_Assign(self, s: ast.Assign) -> list[ast.stmt]:
        tsite = any(has_site(t) for t in s.targets)
        if not has_site(s.value) and not tsite:
            return [s]
        self.header(s, [s.value, *s.targets])
        pre: list[ast.stmt] = []
        self.bottom = s.value
        r = self.expr(s.value, pre)
        if not tsite:
            return pre + [_like(ast.Assign(targets=s.targets, value=r[0], type_comment=None), s)]
        value = self.stabilize(r, pre)
        out = pre
        for t in s.targets:
            out.extend(self.target_assign(t, value, s))
        return out

    def target_assign(self, t: ast.expr, value: ast.expr, s: ast.stmt) -> list[ast.stmt]:
        """`t = value` where value is stable; the target's own sub-expressions are lowered."""
        pre: list[ast.stmt] = []
        post: list[ast.stmt] = []
        new_t = self.target(t, pre, post)
        return pre + [ast.copy_location(ast.Assign(targets=[new_t], value=value), s)] + post

    def target(self, t: ast.expr, pre: list[ast.stmt], post: list[ast.stmt]) -> ast.expr:
        if not has_site(t):
            return t
        if isinstance(t, ast.Attribute):
            return _like(ast.Attribute(value=self.expr(t.value, pre)[0], attr=t.attr, ctx=t.ctx), t)
        if isinstance(t, ast.Subscript):
            (v, _), (i, _) = self.seq([t.value, t.slice], pre)
            return _like(ast.Subscript(value=v, slice=i, ctx=t.ctx), t)
        if isinstance(t, (ast.Tuple, ast.List)):
            elts = []
            for el in t.elts:
                inner = el.value if isinstance(el, ast.Starred) else el
                if has_site(inner):
                    name = self.new_temp()
                    post.extend(self.target_assign(inner, _load(name, inner), inner))
                    new: ast.expr = _store(name, inner)
                    elts.append(_like(ast.Starred(value=new, ctx=ast.Store()), el) if isinstance(el, ast.Starred) else new)
                else:
                    elts.append(el)
            return _like(type(t)(elts=elts, ctx=t.ctx), t)
        if isinstance(t, ast.Starred):
            return _like(ast.Starred(value=self.target(t.value, pre, post), ctx=t.ctx), t)
        return t

    def s_AugAssign(self, s: ast.AugAssign) -> list[ast.stmt]:
        t = s.target
        if not has_site(s.value) and not has_site(t):
            return [s]
        self.header(s, [t, s.value])
        pre: list[ast.stmt] = []
        if isinstance(t, ast.Name) and self.is_stable(_load(t.id, t)):
            r, _ = self.expr(s.value, pre)
            return pre + [_like(ast.AugAssign(target=t, op=s.op, value=r), s)]
        # General form, in CPython's order: target parts, current value, RHS, in-place op, store.
        if isinstance(t, ast.Name):
            load: ast.expr = _load(t.id, t)
            store_t: ast.expr = t
        elif isinstance(t, ast.Attribute):
            obj = self.stabilize(self.expr(t.value, pre), pre)
            load = _like(ast.Attribute(value=obj, attr=t.attr, ctx=ast.Load()), t)
            store_t = _like(ast.Attribute(value=obj, attr=t.attr, ctx=ast.Store()), t)
        else:
            v, i = self.seq([t.value, t.slice], pre)
            v = self.stabilize(v, pre)
            i = self.stabilize(i, pre)
            load = _like(ast.Subscript(value=v, slice=i, ctx=ast.Load()), t)
            store_t = _like(ast.Subscript(value=v, slice=i, ctx=ast.Store()), t)
        cur = self.assign_temp(load, pre)
        r, _ = self.expr(s.value, pre)
        pre.append(_like(ast.AugAssign(target=_store(cur.id, t), op=s.op, value=r), s))
        pre.append(ast.copy_location(ast.Assign(targets=[store_t], value=_load(cur.id, t)), s))
        return pre

    def s_AnnAssign(self, s: ast.AnnAssign) -> list[ast.stmt]:
        if s.value is None or not has_site(s.value) or has_site(s.target):
            return [s]
        self.header(s, [s.value])
        pre: list[ast.stmt] = []
        r, _ = self.expr(s.value, pre)
        return pre + [_like(ast.AnnAssign(target=s.target, annotation=s.annotation, value=r,
                                          simple=s.simple), s)]

    def s_Delete(self, s: ast.Delete) -> list[ast.stmt]:
        if not any(has_site(t) for t in s.targets):
            return [s]
        out: list[ast.stmt] = []
        for t in s.targets:
            pre: list[ast.stmt] = []
            self.header(s, [t])
            new_t = self.target(t, pre, [])
            out.extend(pre + [_like(ast.Delete(targets=[new_t]), s)])
        return out

    def s_Raise(self, s: ast.Raise) -> list[ast.stmt]:
        if not has_site(s.exc) and not has_site(s.cause):
            return [s]
        self.header(s, [s.exc, s.cause])
        pre: list[ast.stmt] = []
        parts = [x for x in (s.exc, s.cause) if x is not None]
        rs = self.seq(parts, pre)
        exc = rs[0][0] if s.exc is not None else None
        cause = rs[-1][0] if s.cause is not None else None
        return pre + [_like(ast.Raise(exc=exc, cause=cause), s)]

    def s_Assert(self, s: ast.Assert) -> list[ast.stmt]:
        if not has_site(s.test) and not has_site(s.msg):
            return [s]
        self.header(s, [s.test, s.msg])
        body: list[ast.stmt] = []
        if not has_site(s.msg):
            r, _ = self.expr(s.test, body)
            body.append(_like(ast.Assert(test=r, msg=s.msg), s))
        else:
            r = self.lift(self.expr(s.test, body), body)

            def fill(out: list[ast.stmt]) -> None:
                m, _ = self.expr(s.msg, out)
                out.append(_like(ast.Assert(test=ast.copy_location(ast.Constant(False), s), msg=m), s))
            fail = self.sub_block(fill)
            body.append(ast.copy_location(ast.If(test=ast.copy_location(ast.UnaryOp(ast.Not(), r), s),
                                                 body=fail, orelse=[]), s))
        temps = self.blocks[-1][:]
        self.blocks[-1].clear()
        if temps:
            body.append(self._delete(temps, s))
        # `if __debug__:` is folded away by the compiler under -O, like the assert itself.
        return [ast.copy_location(ast.If(test=_load('__debug__', s), body=body, orelse=[]), s)]

    def s_If(self, s: ast.If) -> list[ast.stmt]:
        pre: list[ast.stmt] = []
        test = s.test
        if has_site(test):
            self.header(s, [test])
            test = self.expr(test, pre)[0]
        self.unstable = set()
        return pre + [_like(ast.If(test=test, body=self.block(s.body),
                                   orelse=self.block(s.orelse) if s.orelse else []), s)]

    def s_While(self, s: ast.While) -> list[ast.stmt]:
        if not has_site(s.test):
            return [_like(ast.While(test=s.test, body=self.block(s.body),
                                    orelse=self.block(s.orelse) if s.orelse else []), s)]
        # `while True:` + the test (re-evaluated each time round) + `if not test: break`.
        flag = self.new_temp() if s.orelse else None
        out: list[ast.stmt] = []
        if flag:
            out.append(ast.copy_location(ast.Assign(targets=[_store(flag, s)],
                                                    value=ast.copy_location(ast.Constant(False), s)), s))
        self.blocks.append([])
        self.header(s, [s.test])
        loop_pre: list[ast.stmt] = []
        test, _ = self.expr(s.test, loop_pre)
        self.unstable = set()
        temps = self.blocks.pop()
        on_exit: list[ast.stmt] = []
        if temps:
            on_exit.append(self._delete(temps, s))
        if flag:
            on_exit.append(ast.copy_location(ast.Assign(targets=[_store(flag, s)],
                                                        value=ast.copy_location(ast.Constant(True), s)), s))
        on_exit.append(ast.copy_location(ast.Break(), s))
        loop_pre.append(ast.copy_location(ast.If(
            test=ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=test), s.test),
            body=on_exit, orelse=[]), s.test))
        if temps:
            loop_pre.append(self._delete(temps, s))
        body = loop_pre + self.block(s.body)
        out.append(_like(ast.While(test=ast.copy_location(ast.Constant(True), s), body=body, orelse=[]), s))
        if flag:
            out.append(ast.copy_location(ast.If(test=_load(flag, s), body=self.block(s.orelse), orelse=[]), s))
        return out

    def _for(self, s: ast.For | ast.AsyncFor) -> list[ast.stmt]:
        pre: list[ast.stmt] = []
        it = s.iter
        if has_site(it):
            self.header(s, [it])
            it = self.expr(it, pre)[0]
        self.unstable = set()
        target = s.target
        body_pre: list[ast.stmt] = []
        if has_site(target):
            name = self.new_temp()
            body_pre = self.target_assign(target, _load(name, target), target)
            target = _store(name, target)
        node = _like(type(s)(target=target, iter=it, body=body_pre + self.block(s.body),
                             orelse=self.block(s.orelse) if s.orelse else [], type_comment=None), s)
        return pre + [node]

    s_For = s_AsyncFor = _for

    def _with(self, s: ast.With | ast.AsyncWith) -> list[ast.stmt]:
        items = s.items
        split = next((i for i in range(1, len(items)) if has_site(items[i].context_expr)), None)
        if split is not None:
            inner = _like(type(s)(items=items[split:], body=s.body, type_comment=None), s)
            s = _like(type(s)(items=items[:split], body=[inner], type_comment=None), s)
            items = s.items
        pre: list[ast.stmt] = []
        first = items[0]
        ctx = first.context_expr
        if has_site(ctx):
            self.header(s, [ctx])
            r = self.expr(ctx, pre)
            if (pre and r[1]) or isinstance(r[0], ast.Call):
                # `with cm(g()):` -- the context manager is made first and the argument
                # temporaries released before __enter__ runs, as CPython's stack would be.
                # A context manager made by a call is kept in a temporary in any case: a frame
                # suspended inside its __enter__ is re-entered by replaying the With with that
                # very object (made again, __exit__ would go to a new one, never entered).
                args_temps = self.blocks[-1][:]
                ctx = self.assign_temp(r[0], pre, reuse=False)     # outlives the argument temps
                if args_temps:
                    pre.append(self._delete(args_temps, s))
                    del self.blocks[-1][:len(args_temps)]
            else:
                ctx = r[0]
        self.unstable = set()
        new_items = [ast.withitem(context_expr=ctx, optional_vars=first.optional_vars), *items[1:]]
        return pre + [_like(type(s)(items=new_items, body=self.block(s.body), type_comment=None), s)]

    s_With = s_AsyncWith = _with

    def _try(self, s: ast.Try) -> list[ast.stmt]:
        handlers = [_like(ast.ExceptHandler(type=h.type, name=h.name, body=self.block(h.body)), h)
                    for h in s.handlers]
        return [_like(type(s)(body=self.block(s.body), handlers=handlers,
                              orelse=self.block(s.orelse) if s.orelse else [],
                              finalbody=self.block(s.finalbody) if s.finalbody else []), s)]

    s_Try = s_TryStar = _try

    def s_Match(self, s: ast.Match) -> list[ast.stmt]:
        pre: list[ast.stmt] = []
        subject = s.subject
        if has_site(subject):
            self.header(s, [subject])
            subject = self.expr(subject, pre)[0]
        self.unstable = set()
        cases = [_like(ast.match_case(pattern=c.pattern, guard=c.guard, body=self.block(c.body)), c)
                 for c in s.cases]
        return pre + [_like(ast.Match(subject=subject, cases=cases), s)]

    def _def(self, s: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
        pre: list[ast.stmt] = []
        a = s.args
        kwd = [d for d in a.kw_defaults if d is not None]
        parts = [*s.decorator_list, *a.defaults, *kwd]
        if (any(has_site(p) for p in parts) and not any(has_site(d) for d in [*a.defaults, *kwd])
                and decorators_stay_inline(s.decorator_list)):
            decorators = s.decorator_list
        elif any(has_site(p) for p in parts):
            self.header(s, parts)
            rs = iter(self.seq(parts, pre, lift=True))
            decorators = [next(rs)[0] for _ in s.decorator_list]
            defaults = [next(rs)[0] for _ in a.defaults]
            kw_defaults = [None if d is None else next(rs)[0] for d in a.kw_defaults]
            a = ast.arguments(posonlyargs=a.posonlyargs, args=a.args, vararg=a.vararg,
                              kwonlyargs=a.kwonlyargs, kw_defaults=kw_defaults, kwarg=a.kwarg,
                              defaults=defaults)
        else:
            decorators = s.decorator_list
        self.unstable = set()
        new = _like(type(s)(name=s.name, args=a, body=lower_function_body(s, self.scopes),
                            decorator_list=decorators, returns=s.returns, type_comment=None), s)
        return pre + [new]

    s_FunctionDef = s_AsyncFunctionDef = _def

    def s_ClassDef(self, s: ast.ClassDef) -> list[ast.stmt]:
        pre: list[ast.stmt] = []
        parts = [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]
        decorators, bases, keywords = s.decorator_list, s.bases, s.keywords
        if any(has_site(p) for p in parts):
            self.header(s, parts)
            rs = iter(self.seq(parts, pre, lift=True))
            decorators = [next(rs)[0] for _ in s.decorator_list]
            bases = [next(rs)[0] for _ in s.bases]
            keywords = [_like(ast.keyword(arg=k.arg, value=next(rs)[0]), k) for k in s.keywords]
        self.unstable = set()
        new = _like(ast.ClassDef(name=s.name, bases=bases, keywords=keywords,
                                 body=lower_class_body(s.body, self.scopes), decorator_list=decorators), s)
        return pre + [new]


class _Inserter(list):
    """A list view that appends into `target` before index `at` (keeps trailing `del` last)."""

    def __init__(self, target: list[ast.stmt], at: int) -> None:
        super().__init__()
        self._target = target
        self._at = at

    def append(self, item: ast.stmt) -> None:
        self._target.insert(self._at, item)
        self._at += 1


def lower_function_body(fn: ast.FunctionDef | ast.AsyncFunctionDef, scopes: Scopes) -> list[ast.stmt]:
    return _Lowerer(scopes, scopes.stable_names(fn)).block(fn.body)


def lower_class_body(body: list[ast.stmt], scopes: Scopes) -> list[ast.stmt]:
    """Class bodies run once, entered from C (`__build_class__`), and their namespace may be a
    custom mapping (Enum): they are not lowered, only the functions defined in them are."""
    return [_rewrite_nested(s, scopes) for s in body]


def _rewrite_nested(s: ast.stmt, scopes: Scopes) -> ast.stmt:
    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _like(type(s)(name=s.name, args=s.args, body=lower_function_body(s, scopes),
                             decorator_list=s.decorator_list, returns=s.returns, type_comment=None), s)
    if isinstance(s, ast.ClassDef):
        return _like(ast.ClassDef(name=s.name, bases=s.bases, keywords=s.keywords,
                                  body=lower_class_body(s.body, scopes), decorator_list=s.decorator_list), s)
    for field in ('body', 'orelse', 'finalbody'):
        if isinstance(getattr(s, field, None), list):
            setattr(s, field, [_rewrite_nested(x, scopes) for x in getattr(s, field)])
    for h in getattr(s, 'handlers', []) or []:
        h.body = [_rewrite_nested(x, scopes) for x in h.body]
    for c in getattr(s, 'cases', []) or []:
        c.body = [_rewrite_nested(x, scopes) for x in c.body]
    return s


def lower_module_body(body: list[ast.stmt], scopes: Scopes) -> list[ast.stmt]:
    """The module body in the resumable form (module level: no name is stable, any may change)."""
    return _Lowerer(scopes, frozenset(), in_function=False).block(body) if body else []
