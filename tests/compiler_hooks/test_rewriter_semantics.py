"""The resumable form keeps meaning: every snippet gives the same result, output and (formatted,
caret-exact) traceback plainly and rewritten; and the rewriting really happened."""
from __future__ import annotations

import ast
import glob
import linecache
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsupport import SNIPPETS, execute, resume_points, rewriter  # noqa: E402

# Each snippet sets `result` (or raises); a log of calls makes evaluation order visible.
CASES: dict[str, str] = {
    'nested_calls_order': '''
log = []
def f(x): log.append(x); return x
def g(*a, **k): log.append(('g', a, tuple(sorted(k.items())))); return a
result = (g(f(1), f(2), *[f(3)], k=f(4), **{'z': f(5)}), f(f(6)) + f(7) * f(8), log)
''',
    'short_circuit': '''
log = []
def f(x): log.append(x); return x
r = [f(0) and f(1), f(1) and f(2), f(0) or f(3), f(1) or f(4), f(0) or f(0) and f(5) or f(6),
     (f(1) and f(2)) or f(f(3)), not (f(0) or f(f(0)))]
if f(0) and f(f(7)): r.append('no')
while f(0) or f(f(0)): pass
result = (r, log)
''',
    'chained_compare': '''
log = []
def f(x): log.append(x); return x
result = ([f(1) < f(2) < f(3), f(3) < f(2) < f(f(9)), f(1) < f(2) > f(0) < f(f(5)),
           f(1) == f(1) != f(2) in [f(2)], 0 < f(1) < 2, f(1) is not f(None)], log)
''',
    'binary_and_unary': '''
log = []
class V:
    def __init__(self, n): self.n = n
    def __add__(self, o): log.append(('add', self.n)); return V(self.n + o.n)
    def __neg__(self): log.append('neg'); return V(-self.n)
def f(x): log.append(x); return V(x)
g = V(10)
def h():
    global g
    g = V(100)
    return V(1)
result = ((g + h()).n, (-f(2) + f(3)).n, log)
''',
    'fstrings': '''
log = []
def f(x): log.append(x); return x
lst = [1]
def grow(): lst.append(2); return 'x'
result = (f"{f(1)!r:>{f(4)}}|{f('s')}|{lst}{grow()}{lst}", f"{'{'}{f(3):{f('^')}{f(5)}}", log)
''',
    'subscripts_slices': '''
log = []
def f(x): log.append(x); return x
d = {'a': [0, 1, 2, 3]}
result = (d[f('a')][f(1):f(3):f(1)], d[f('a')][f(f(2))], log)
''',
    'augassign_targets': '''
log = []
def f(x): log.append(x); return x
class O: n = 1
o = O(); d = {'k': [1]}; g = 5
def t():
    global g
    x = 1
    x += f(2)
    o.n += f(3)
    d[f('k')][f(0)] += f(4)
    g *= f(2)
    return x
result = (t(), o.n, d, g, log)
''',
    'assignment_targets': '''
log = []
def f(x): log.append(x); return x
d = {}; lst = [0, 0, 0]
def t():
    d[f('a')] = d[f('b')] = f(1)
    a, *b, lst[f(2)] = f([1, 2, 3, 4])
    (x := f(5)); y = x + f(1)
    return a, b, x, y
result = (t(), d, lst, log)
''',
    'comprehensions_scoping': '''
log = []
def f(x): log.append(x); return x
x = 'outer'
def t():
    y = 10
    a = [f(x) + y for x in f(range(3)) if f(x) % 2 == 0]
    b = {f(k): f(v) for k, v in zip(range(2), f('ab'))}
    c = {f(i) * 2 for i in range(3)}
    g = (f(i) for i in f(range(2)))
    d = sum(g)
    e = [[f(i) for i in range(j)] for j in range(3)]
    w = [(last := f(i)) for i in range(3)]
    return a, b, c, d, e, w, last
class K:
    v = 5
    items = [v * 2 for _ in range(2)] if False else [f(i) for i in range(2)]
result = (t(), x, K.items, log)
''',
    'genexp_eager_first_iterable': '''
def f(): raise KeyError('first iterable')
try:
    g = (x for x in f())
except KeyError as e:
    result = 'eager: ' + str(e)
''',
    'lambda_defaults_decorators': '''
log = []
def f(x): log.append(x); return x
def deco(tag):
    log.append(('deco', tag))
    def d(fn): fn.tag = tag; return fn
    return d
@deco(f('outer'))
@deco(f('inner'))
def h(a=f(1), *, b=f(2)):
    """doc of h"""
    return (lambda q=f(3), *, r=f(4): q + r + a + b)()
result = (h(), h.tag, h.__doc__, h.__name__, h.__qualname__, log)
''',
    'class_body_and_super': '''
log = []
def f(x): log.append(x); return x
class A:
    def m(self, x): return ('A', x)
class B(A):
    attr = f(len(str(123)))
    def m(self, x): return ('B', super().m(f(x)), __class__.__name__)
def make():
    class C(B, metaclass=type):
        def m(self, x): return ('C', super().m(f(f(x))))
    return C
result = (make()().m(1), B.attr, sorted(k for k in vars(B) if not k.startswith('__')), log)
''',
    'global_nonlocal_walrus': '''
g = 0
def f(x): return x
def outer():
    n = 0
    def inc():
        global g
        nonlocal n
        n = f(n) + f(1)
        g = f(g) + f(n)
        return n
    inc(); inc()
    if (m := f(n) * 2) > f(1):
        return n, m, g
result = outer()
''',
    'match_statement': '''
def f(x): return x
def m(v):
    match f(v):
        case [a, b] if f(a) > f(b): return f(('gt', a, b))
        case [a, *rest] if len(rest) == f(2): return ('rest', a, rest)
        case {'k': x} if f(str(x)): return f(x)
        case str() as s: return s.upper()
        case _: return f('other')
result = [m([2, 1]), m([1, 2, 3]), m({'k': 5}), m('abc'), m(None)]
''',
    'try_except_finally': '''
import sys
log = []
def f(x):
    log.append(x)
    if x == 'boom': raise ValueError(x)
    return x
def t():
    try:
        f(f('boom'))
    except ValueError as e:
        log.append((str(e), sys.exc_info()[0].__name__, f(len(str(e)))))
    try:
        try:
            f(f('boom'))
        finally:
            log.append(f(sys.exc_info()[0].__name__))
    except ValueError:
        log.append(f('outer'))
    try:
        try:
            raise KeyError(f(1))
        except KeyError:
            raise
    except KeyError as e2:
        log.append(repr(e2.__context__))
    try:
        try:
            f('boom')
        except ValueError:
            raise TypeError(f('t'))
    except TypeError as e3:
        log.append(type(e3.__context__).__name__)
    return log
result = t()
''',
    'except_star': '''
log = []
def f(x): log.append(x); return x
def t():
    try:
        raise ExceptionGroup('eg', [ValueError(f(1)), KeyError(f(2))])
    except* ValueError as e:
        log.append(('V', f(len(e.exceptions))))
    except* KeyError as e:
        log.append(('K', str(f(e.exceptions[0]))))
    return [repr(x) for x in log]
result = t()
''',
    'with_statements': '''
log = []
def f(x): log.append(x); return x
class CM:
    def __init__(self, n): self.n = n
    def __enter__(self): log.append(('enter', self.n)); return self.n
    def __exit__(self, *a): log.append(('exit', self.n, a[0] and a[0].__name__)); return f(self.n == 3)
def t():
    with CM(f(1)) as a, CM(f(a + 1)) as b:
        log.append(f(a + b))
    with CM(3):
        raise KeyError(f('swallowed'))
    return log
result = t()
''',
    'async_constructs': '''
import asyncio
log = []
def f(x): log.append(x); return x
class ACM:
    async def __aenter__(self): log.append('aenter'); return f(1)
    async def __aexit__(self, *a): log.append('aexit')
async def agen(n):
    for i in range(f(n)):
        yield f(i)
        await asyncio.sleep(0)
async def co(x):
    return f(await other(f(x))) + f(1)
async def other(x):
    return x
async def main():
    r = [await co(f(1))]
    async with ACM() as v:
        r.append(f(v))
    async for i in agen(f(2)):
        r.append(f(i))
    r.append([f(i) async for i in agen(2)])
    r.append(await asyncio.gather(co(1), co(f(2))))
    return r
result = (asyncio.run(main()), log)
''',
    'generators': '''
def f(x): return x
def gen(n):
    total = 0
    try:
        for i in range(f(n)):
            got = yield f(i) * 2
            total += f(got or 0)
            x = yield from inner(f(i))
            total += x
    finally:
        yield ('closing', total)
def inner(x):
    y = yield x
    return f(y or 0) + 1
g = gen(3)
out = [next(g), g.send(5), g.send(6), g.send(7), g.throw(GeneratorExit) if False else g.close()]
result = out
''',
    'del_assert_unpack': '''
log = []
def f(x): log.append(x); return x
d = {'a': 1, 'b': 2}
def t():
    del d[f('a')], d[f('b')]
    assert f(1) == f(1), f('never')
    try:
        assert f(1) == f(2), f('message')
    except AssertionError as e:
        msg = str(e)
    a, (b, *c) = f(1), f([2, 3, 4])
    first, *mid, last = [*f([1, 2]), *f((3, 4))]
    return msg, a, b, c, first, mid, last, {**f({'x': 1}), 'y': f(2)}
result = (t(), d, log)
''',
    'locals_and_code_attributes': '''
import inspect
def f(x): return x
def t(a, b=2, *args, k=1, **kw):
    """docstring"""
    x = f(f(a)) + f(b)
    y = [f(i) for i in range(2)]
    return sorted(locals()), f(len(str(x)))
c = t.__code__
result = (t(1), t.__doc__, c.co_name, c.co_qualname, c.co_firstlineno,
          c.co_varnames[:c.co_argcount + c.co_kwonlyargcount + 2], c.co_argcount)
''',
    'traceback_carets': '''
def f(x): return x
def g(d):
    return f(d['a']) + f(d)['missing'] + f(1)
def h():
    return g({'a': 1}) * f(2)
h()
''',
    'traceback_binop_caret': '''
def f(x): return x
def g():
    return f(1) + f(None) * f(3)
g()
''',
    'uncaught_in_lifted_call': '''
def boom(x): raise RuntimeError(x)
def g():
    total = [1, 2]
    total.append(len(str(boom(len(total)))))
g()
''',
    'exception_lifetime': '''
import gc, sys
seen = []
class MyObject:
    def __del__(self):
        seen.append(sys.exc_info())
def t():
    try:
        raise Exception(MyObject())
    except:
        pass
    gc.collect()
    return seen
result = t()
''',
    'while_else': '''
log = []
def f(x): log.append(x); return x
def t(n):
    i = 0
    while f(i) < f(n):
        i += 1
        if i == 5: break
    else:
        log.append('else')
    return i
result = (t(3), t(9), log)
''',
    'call_chain_lifetimes': '''
import weakref
log = []
refs = []
class N:
    def __init__(self, k):
        self.k = k
        refs.append(weakref.ref(self))
    def nxt(self, *extra):
        log.append(('nxt', self.k, extra, [r() is not None for r in refs]))
        return N(self.k + 1)
def f(x): log.append(x); return x
def wrap(n): log.append(('wrap', n.k, [r() is not None for r in refs])); return N(n.k * 10)
def t():
    v = N(0).nxt().nxt(f(1)).nxt()
    log.append([r() is not None for r in refs])
    w = wrap(wrap(N(5).nxt(f(2), f(3))))
    log.append([r() is not None for r in refs])
    return v.k, w.k
result = (t(), log)
''',
}


def _register(name: str, src: str) -> str:
    filename = f'<snippet {name}>'
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    return filename


class SemanticsEquivalence(unittest.TestCase):
    def check(self, name: str, src: str, filename: str | None = None) -> None:
        filename = filename or _register(name, src)
        plain = execute(src, filename, rewritten=False)
        rewritten = execute(src, filename, rewritten=True)
        self.assertEqual(plain, rewritten, f'{name}: plain vs rewritten')

    def test_cases(self) -> None:
        for name, src in CASES.items():
            with self.subTest(name):
                self.check(name, src)

    def test_snippet_files(self) -> None:
        files = sorted(glob.glob(os.path.join(SNIPPETS, '*.py')))
        self.assertGreaterEqual(len(files), 3)
        for path in files:
            with self.subTest(os.path.basename(path)):
                with open(path) as f:
                    self.check(os.path.basename(path), f.read(), path)

    def test_rewrite_happened(self) -> None:
        # Guard against a vacuous oracle: the cases above are really transformed.
        changed = 0
        for name, src in CASES.items():
            tree = ast.parse(src)
            before = ast.dump(tree)
            rewriter.rewrite_tree(tree, src, name)
            changed += ast.dump(tree) != before
        self.assertGreaterEqual(changed, len(CASES) - 2)

    def test_hidden_names_cannot_collide(self) -> None:
        # A user name can never start with '.', so `.t0` is unreachable from source.
        with self.assertRaises(SyntaxError):
            compile('.t0 = 1', 'x', 'exec')
        src = 't0 = 5\ndef f(x): return x\nresult = f(f(t0))\n'
        self.assertEqual(execute(src, 'x.py', True)[0], 5)

    def test_no_hidden_name_left_in_locals(self) -> None:
        src = ('def f(x): return x\n'
               'def t():\n    a = f(f(1)) + f(2)\n    b = [f(i) for i in range(f(2))]\n'
               '    if f(f(a)):\n        c = str(f(len(b)))\n    return sorted(locals())\n'
               'result = t()\n')
        self.assertEqual(execute(src, 'x.py', True)[0], ['a', 'b', 'c'])

    def test_each_statement_holds_one_site(self) -> None:
        # Structural invariant of the lowering inside functions: no Call nested in a Call.
        src = CASES['nested_calls_order'] + CASES['fstrings']
        tree = ast.parse(src)
        rewriter.rewrite_tree(tree, src, 'x')
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                inner = [n for a in (*node.args, *(k.value for k in node.keywords)) for n in ast.walk(a)
                         if isinstance(n, ast.Call)]
                self.assertEqual(inner, [], ast.unparse(node))

    def test_code_objects_carry_tables(self) -> None:
        code, _ = rewriter.rewrite_module(CASES['generators'], 'g.py')
        self.assertIsNotNone(resume_points.resume_table(code))
        fn = [c for c in code.co_consts if hasattr(c, 'co_code') and c.co_name == 'gen'][0]
        rows = resume_points.resume_table(fn)
        self.assertTrue(any(r.resumable for r in rows))
        self.assertIsNone(resume_points.resume_table(compile('x = 1', 'p', 'exec')))


if __name__ == '__main__':
    unittest.main()
