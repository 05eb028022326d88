"""Resume-point tables are true: at every resumable row's start offset the real value stack of a
running frame holds exactly the listed structural values (checked by reading the frame with
ctypes during 'opcode' trace events), every call made from rewritten code lies in a row, and
the rewriting is what makes sites resumable."""
from __future__ import annotations

import ast
import ctypes
import glob
import importlib.util
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsupport import SNIPPETS, listing, resume_points, rewriter, sites  # noqa: E402
from test_rewriter_semantics import CASES  # noqa: E402

STDLIB = [os.path.join(os.path.dirname(os.__file__), p) for p in
          ('threading.py', 'queue.py', 'selectors.py', 'socketserver.py', 'json/decoder.py',
           'asyncio/base_events.py', 'asyncio/tasks.py', 'concurrent/futures/_base.py')]


# --- reading a frame's value stack (CPython 3.11 layout; test-only) --------------------------
# PyFrameObject: PyObject_HEAD (16), f_back (8), f_frame (8) ...
# _PyInterpreterFrame: f_func, f_globals, f_builtins, f_locals, f_code, frame_obj, previous,
# prev_instr (8 pointers), int stacktop, bool is_entry, char owner, PyObject *localsplus[].
_F_FRAME = 24
_STACKTOP = 64
_LOCALSPLUS = 72


def frame_stack(frame: types.FrameType) -> list[object]:
    """The value stack of `frame` (valid while it is being traced), bottom first."""
    iframe = ctypes.c_void_p.from_address(id(frame) + _F_FRAME).value
    top = ctypes.c_int.from_address(iframe + _STACKTOP).value
    co = frame.f_code
    nlocalsplus = len(co.co_varnames) + len(co.co_cellvars) + len(co.co_freevars)
    out = []
    for i in range(nlocalsplus, top):
        addr = ctypes.c_void_p.from_address(iframe + _LOCALSPLUS + 8 * i).value
        out.append(None if addr is None else ctypes.cast(addr, ctypes.py_object).value)
    return out


def instruction_at(frame: types.FrameType) -> str:
    import dis
    name = ''
    for ins in dis.get_instructions(frame.f_code):
        if ins.offset > frame.f_lasti:
            break
        name = ins.opname
    return name


def kind_holds(kind: str, value: object) -> bool:
    if kind in (resume_points.FOR_ITER, resume_points.ASYNC_FOR_ITER):
        return hasattr(value, '__next__') or hasattr(value, '__anext__')
    if kind == resume_points.WITH_EXIT:
        return getattr(value, '__name__', '') in ('__exit__', '__aexit__')
    if kind == resume_points.EXC_PREV:
        return value is None or isinstance(value, BaseException)
    if kind == resume_points.EXC:
        return isinstance(value, BaseException)
    if kind == resume_points.COMP_ACC:
        return isinstance(value, (list, set, dict))
    if kind == resume_points.OPERAND:
        return True                 # any value: a call's result
    return False


def corpus() -> list[tuple[str, str]]:
    out = list(CASES.items())
    for path in sorted(glob.glob(os.path.join(SNIPPETS, '*.py'))) + STDLIB:
        with open(path) as f:
            out.append((path, f.read()))
    return out


def all_rows(code: types.CodeType) -> list[tuple[types.CodeType, resume_points.Row]]:
    return [(co, r) for co, table in resume_points.iter_tables(code) for r in table]


class StaticTables(unittest.TestCase):
    def test_marker_layout(self) -> None:
        code, _ = rewriter.rewrite_module('def f(x):\n    return g(h(x))\n', 'm.py')
        fn = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        last = fn.co_consts[-1]
        self.assertEqual(last[0], resume_points.MARKER)
        self.assertEqual(last[1], resume_points.TABLE_VERSION)
        rows = resume_points.resume_table(fn)
        self.assertEqual(len(rows), 2)
        for r in rows:
            self.assertIsInstance(r, tuple)
            self.assertEqual(len(r), 7)
            self.assertTrue(r.resumable, r)
            self.assertLess(r.start, r.begin)
            self.assertLess(r.begin, r.end)
            self.assertEqual(r.line, 2)
        self.assertEqual([r.id for r in rows], ['body[0].body[0].value.args[0]', 'body[0].body[0].value'])

    def test_left_call_result_is_an_operand_not_a_local(self) -> None:
        src = ('def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n'
               'def mixed(a):\n    return a.x + f(a) - g(h(a))\n')
        code, _ = rewriter.rewrite_module(src, 'm.py')
        fib, mixed = (c for c in code.co_consts if isinstance(c, types.CodeType))
        self.assertEqual(fib.co_varnames, ('n',))           # no temporary: no extra local
        left, right = resume_points.resume_table(fib)
        self.assertEqual((left.stack, right.stack), ((), (resume_points.OPERAND,)))
        self.assertTrue(left.resumable and right.resumable)
        self.assertGreater(right.start, left.begin)         # replay starts after the left call
        # Not at the bottom of its statement, or the right operand needs a statement of its
        # own: temporaries as before.
        self.assertEqual([n for n in mixed.co_varnames if n.startswith('.')], ['.t0', '.t1', '.t2'])
        self.assertTrue(all(r.resumable and resume_points.OPERAND not in r.stack
                            for r in resume_points.resume_table(mixed)))

    def test_decorator_lists_stay_in_order_with_operand_rows(self) -> None:
        src = ('def outer(a, b, log):\n'
               '    @a\n    @b(1)\n    def g(): pass\n'
               '    @b(2)\n    @b(3)\n    def h(): pass\n'
               '    @a\n    @b(log(4))\n    def k(): pass\n'
               '    return g, h, k\n')
        code, _ = rewriter.rewrite_module(src, 'm.py')
        outer = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        # Only the decorator whose argument holds a site is lifted (into one temporary).
        self.assertEqual([n for n in outer.co_varnames if n.startswith('.')], ['.t0'])
        rows = {}
        for r in resume_points.resume_table(outer):
            rows.setdefault(r.id, []).append(r)
        factory, applied = rows['body[0].body[0].decorator_list[1]']       # @a @b(1): b(1), then its result
        self.assertEqual((factory.resumable, factory.stack), (True, ()))
        # Applying a decorator that is a call result: the call takes that value from the stack
        # (a Python decorator owns it once it runs), so it is never listed as captured.
        self.assertFalse(applied.resumable, applied)
        first = rows['body[0].body[1].decorator_list[0]'][0]                # @b(2) @b(3)
        second = rows['body[0].body[1].decorator_list[1]'][0]
        self.assertEqual((second.resumable, second.stack), (True, (resume_points.OPERAND,)))
        self.assertGreater(second.start, first.begin)                       # replay starts after b(2)

    def test_rewriting_is_what_makes_sites_resumable(self) -> None:
        """Explicit sites in function bodies: nearly all resumable after rewriting, far fewer
        in the plain compilation of the same source (tables built the same way)."""
        totals = {True: [0, 0], False: [0, 0]}
        for name, src in corpus():
            tree = ast.parse(src)
            sites.assign_site_ids(tree)
            plain = resume_points.attach_tables(compile(tree, name, 'exec', dont_inherit=True), tree)
            rewritten, _ = rewriter.rewrite_module(src, name)
            for flag, code in ((False, plain), (True, rewritten)):
                for co, r in all_rows(code):
                    if (co.co_name == '<module>' or r.id.startswith('implicit@')
                            or r.reason == resume_points.GENERATOR_CREATION):
                        continue
                    totals[flag][0] += 1
                    totals[flag][1] += r.resumable
        frac_rw = totals[True][1] / totals[True][0]
        frac_plain = totals[False][1] / max(1, totals[False][0])
        self.assertGreater(totals[True][0], 1000)
        self.assertGreater(frac_rw, 0.93, totals)
        self.assertLess(frac_plain, frac_rw - 0.1, totals)

    def test_rows_cover_every_call_instruction(self) -> None:
        import dis
        for name, src in corpus():
            code, _ = rewriter.rewrite_module(src, name)
            for co, table in resume_points.iter_tables(code):
                begins = {r.begin for r in table} | {r.begin + 2 for r in table}
                for ins in dis.get_instructions(co):
                    if ins.opname in ('CALL', 'CALL_FUNCTION_EX', 'SEND'):
                        self.assertTrue(any(r.begin <= ins.offset < r.end for r in table),
                                        (name, co.co_name, ins.offset, ins.opname))
                del begins

    def test_comprehension_with_nested_calls_is_lowered(self) -> None:
        src = 'def f(a):\n    return [g(h(x)) for x in a if k(x) and k(k(x))]\n'
        code, _ = rewriter.rewrite_module(src, 'm.py')
        comp = [(co, r) for co, r in all_rows(code) if co.co_name == '<listcomp>']
        self.assertEqual(comp[0][0].co_qualname, 'f.<locals>.<listcomp>')
        self.assertEqual(comp[0][0].co_varnames[0], '.0')
        self.assertGreaterEqual(len(comp), 5)
        self.assertTrue(all(r.resumable for _, r in comp), comp)

    def test_non_resumable_rows_say_why(self) -> None:
        src = 'def f(a):\n    return [(y := g(h(x))) for x in a]\n'   # walrus: not lowered
        code, _ = rewriter.rewrite_module(src, 'm.py')
        rows = [r for _, r in all_rows(code)]
        bad = [r for r in rows if not r.resumable]
        self.assertTrue(bad)
        for r in bad:
            self.assertEqual(r.start, -1)
            self.assertTrue(r.reason)
        text = listing.format_resumable(src, 'm.py')
        self.assertIn('NOT resumable', text)
        self.assertIn('resume body[0]', text)


class DynamicStack(unittest.TestCase):
    """Run rewritten code under an opcode tracer; at each row start compare the real stack."""

    def run_traced(self, code: types.CodeType) -> tuple[int, int, list[str]]:
        starts: dict[types.CodeType, dict[int, resume_points.Row]] = {}
        for co, table in resume_points.iter_tables(code):
            starts[co] = {r.start: r for r in table if r.resumable}
        tables = {co: table for co, table in resume_points.iter_tables(code)}
        checked = [0, 0]
        problems: list[str] = []

        def tracer(frame: types.FrameType, event: str, arg: object):
            co = frame.f_code
            if co not in starts:
                return None
            frame.f_trace_opcodes = True
            if (event == 'call' and frame.f_back is not None and frame.f_back.f_code in tables
                    and instruction_at(frame.f_back) in ('PRECALL', 'CALL', 'CALL_FUNCTION_EX', 'SEND')):
                caller = frame.f_back       # (calls from BINARY_OP & co. are entered from C)
                rows = [r for r in tables[caller.f_code] if r.begin <= caller.f_lasti < r.end]
                checked[1] += 1
                if len(rows) != 1:
                    problems.append(f'call from {caller.f_code.co_name}@{caller.f_lasti}: rows {rows}')
            if event == 'opcode':
                row = starts[co].get(frame.f_lasti)
                if row is not None:
                    stack = frame_stack(frame)
                    expect = row.stack
                    if row.start == row.begin:
                        # resumed in place (yield / await / yield from): the yielded or sent
                        # value is on top; for await the awaited object is under it
                        stack = stack[:len(expect)]
                        if expect and expect[-1] == resume_points.AWAITED:
                            expect = expect[:-1]
                            stack = stack[:-1]
                    checked[0] += 1
                    if len(stack) != len(expect) or not all(map(kind_holds, expect, stack)):
                        problems.append(f'{co.co_name}@{row.start} {row.id}: table {row.stack} real {stack!r}')
            return tracer

        ns: dict = {'__name__': 'traced'}
        saved = sys.gettrace()
        sys.settrace(tracer)
        try:
            exec(code, ns)
        except BaseException:       # some snippets end by raising on purpose
            pass
        finally:
            sys.settrace(saved)
        return checked[0], checked[1], problems

    def test_stack_at_row_starts(self) -> None:
        total_starts = total_calls = 0
        for name, src in corpus()[:len(CASES) + 3]:
            if name in ('async_constructs',):
                continue            # asyncio's own frames make the trace very long; covered below
            code, _ = rewriter.rewrite_module(src, name)
            n_starts, n_calls, problems = self.run_traced(code)
            self.assertEqual(problems, [], name)
            total_starts += n_starts
            total_calls += n_calls
        self.assertGreater(total_starts, 300)
        self.assertGreater(total_calls, 200)

    def test_structural_kinds_seen(self) -> None:
        src = '''
import contextlib
def f(x): return x
def t():
    out = []
    for i in range(2):
        with contextlib.nullcontext():
            try:
                raise KeyError(f(i))
            except KeyError:
                out.append(f(i))
            try:
                try:
                    raise ValueError
                finally:
                    out.append(f('fin'))
            except ValueError:
                pass
    return [f(x) for x in out], {f(x) for x in out}, {x: f(x) for x in out}
t()
'''
        code, _ = rewriter.rewrite_module(src, 'kinds.py')
        kinds = {k for _, r in all_rows(code) if r.resumable for k in r.stack}
        self.assertEqual(kinds, {resume_points.FOR_ITER, resume_points.WITH_EXIT, resume_points.EXC_PREV,
                                 resume_points.EXC, resume_points.COMP_ACC})
        n_starts, _, problems = self.run_traced(code)
        self.assertEqual(problems, [])
        self.assertGreater(n_starts, 10)


if __name__ == '__main__':
    unittest.main()
