"""compiler_hooks/bytecode.py, the one Python module that knows CPython 3.11's bytecode, exception
tables and line tables: checked against what the interpreter itself compiles (the standard
library), so that a port shows here first what no longer holds."""
from __future__ import annotations

import glob
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsupport import bytecode as bc  # noqa: E402

STDLIB = os.path.dirname(os.__file__)
SAMPLE = ['threading.py', 'asyncio/base_events.py', 'json/decoder.py', 'contextlib.py', 'typing.py',
          'dataclasses.py', 'test/test_grammar.py', 'test/test_exceptions.py']


def code_objects(code: types.CodeType):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from code_objects(c)


def sample_codes() -> list[types.CodeType]:
    out = []
    for rel in SAMPLE:
        path = os.path.join(STDLIB, rel)
        if not os.path.exists(path):
            continue
        with open(path, 'rb') as f:
            out.extend(code_objects(compile(f.read(), path, 'exec', dont_inherit=True)))
    return out


class Formats(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.codes = sample_codes()
        assert len(cls.codes) > 1000, len(cls.codes)

    def test_exception_tables_decode_and_encode_back_exactly(self) -> None:
        with_handlers = 0
        for code in self.codes:
            entries = bc.exception_entries(code)
            with_handlers += bool(entries)
            self.assertEqual(bc.encode_exception_table(entries), code.co_exceptiontable, code)
            for e in entries:
                self.assertTrue(0 <= e.start < e.end <= bc.code_size(code) and e.target < bc.code_size(code))
        self.assertGreater(with_handlers, 100)

    def test_instructions_encode_as_the_compiler_wrote_them(self) -> None:
        """Opcode, argument, EXTENDED_ARG prefixes and inline caches: every instruction's bytes."""
        extended = 0
        for code in self.codes:
            raw = code.co_code
            ins = bc.instructions(code)
            for i, x in enumerate(ins):
                if x.opname == 'EXTENDED_ARG':
                    continue
                first = i
                while first > 0 and ins[first - 1].opname == 'EXTENDED_ARG':
                    first -= 1
                extended += first < i
                self.assertEqual(bc.encode_instruction(x.opname, x.arg or 0),
                                 raw[ins[first].offset:bc.instruction_end(x)], (code, x))
        self.assertGreater(extended, 0)

    def test_a_call_is_spelled_as_the_compiler_spells_it(self) -> None:
        code = compile('f(a, b)', 'm.py', 'eval')
        raw = code.co_code
        start = next(x.offset for x in bc.instructions(code) if x.opname == bc.CALL_PREFIX)
        self.assertEqual(raw[start:start + len(bc.call_instructions(2))], bc.call_instructions(2))

    def test_line_table_entries_and_no_location(self) -> None:
        """Instructions inserted at an entry boundary with `no_location` entries shift nothing
        else: the positions of every original instruction are unchanged."""
        def f(a, b):
            c = a + b
            return c * 2

        code = f.__code__
        at = next(x.offset for x in bc.instructions(code) if x.opname == 'RESUME') // 2 + 1
        pos = bc.line_table_boundary(code.co_linetable, at)
        self.assertIsNotNone(pos)
        self.assertEqual(bc.line_table_boundary(code.co_linetable, 0), 0)
        n = 3
        raw = code.co_code
        new = code.replace(co_code=raw[:2 * at] + bc.encode_instruction('NOP') * n + raw[2 * at:],
                           co_linetable=code.co_linetable[:pos] + bc.no_location(n) + code.co_linetable[pos:])
        old_pos, new_pos = list(code.co_positions()), list(new.co_positions())
        self.assertEqual(new_pos[:at] + new_pos[at + n:], old_pos)
        self.assertEqual(new_pos[at:at + n], [(None, None, None, None)] * n)
        self.assertEqual(types.FunctionType(new, {})(2, 3), 10)
        self.assertEqual(len(bc.no_location(20)), 3)          # 8 + 8 + 4 units

    def test_the_stack_model_agrees_with_the_compiler(self) -> None:
        """`stack_tags` (the base of every resume-point row) follows each instruction's stack
        effect: its depth never exceeds the compiler's co_stacksize, a function returns from a
        stack that holds only the return value, and every handler reached gets a model."""
        returns = 0
        for code in self.codes:
            instrs, before = bc.stack_tags(code)
            self.assertTrue(before, code)
            for st in before.values():
                self.assertLessEqual(len(st), code.co_stacksize, code)
            for x in instrs:
                if x.opname == 'RETURN_VALUE' and x.offset in before:
                    self.assertEqual(len(before[x.offset]), 1, (code, x.offset))
                    returns += 1
            for e in bc.exception_entries(code):
                if any(e.start <= off < e.end for off in before):
                    self.assertIn(e.target, before, code)
        self.assertGreater(returns, 1000)

if __name__ == '__main__':
    unittest.main()
