"""CPython internals behind one door on each side (issue 16.5): core/cpython_internals.h (and its C
shim) for C++, compiler_hooks/bytecode.py for Python. A port to another CPython then starts from
those two files; these tests keep everything else from reaching past them again."""
from __future__ import annotations

import ast
import glob
import os
import re
import unittest

REPO = os.environ.get('STASIS_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Files that still reach CPython internals themselves, each with its reason. Keep it empty: the accessors
# are in core/cpython_internals.h / compiler_hooks/bytecode.py.
PENDING_CPP: set[str] = set()
PENDING_PY: set[str] = set()

# Private CPython names (_Py...) except opaque handle types and the weakref type objects that the
# public PyWeakref_Check* macros name; fields of CPython's internal structs; internal headers.
_PRIVATE = re.compile(r'\b_Py(?!InterpreterFrame\b|Weakref_(?:Ref|Proxy|CallableProxy)Type\b)[A-Za-z0-9_]+')
_FIELDS = re.compile(r'->(co_localsplusnames|co_localspluskinds|co_nlocalsplus|co_nfreevars|co_ncellvars|'
                     r'co_code_adaptive|c_tracefunc|c_traceobj|prev_instr|stacktop|localsplus|gi_iframe|'
                     r'gi_frame_state|gi_code|cframe|is_entry|f_trace_lines|f_func|f_frame)\b|'
                     r'\b(?:ts|tstate)->\w+|internal/pycore')
_COMMENT = re.compile(r'//[^\n]*|/\*.*?\*/', re.S)


class Door(unittest.TestCase):
    def test_cpp_reaches_cpython_internals_only_through_the_header(self) -> None:
        found = {}
        for folder in ('core', 'format', 'snapshot', 'restore', 'compiler_hooks', 'updater', 'engine'):
            for path in sorted(glob.glob(os.path.join(REPO, folder, '**', '*.[ch]*'), recursive=True)):
                rel = os.path.relpath(path, REPO)
                if not path.endswith(('.cpp', '.h', '.c')) or rel.startswith('core/cpython_internals'):
                    continue
                with open(path, encoding='utf-8') as f:
                    text = _COMMENT.sub('', f.read())
                hits = sorted({m.group(0) for m in _PRIVATE.finditer(text)} | {m.group(0) for m in _FIELDS.finditer(text)})
                if hits:
                    found[rel] = hits
        stray = {k: v for k, v in found.items() if k not in PENDING_CPP}
        self.assertEqual(stray, {}, 'use (or add) an accessor of core/cpython_internals.h')
        self.assertEqual(sorted(PENDING_CPP - set(found)), [], 'converted: remove from PENDING_CPP')

    def test_python_reads_bytecode_only_through_the_bytecode_module(self) -> None:
        found = set()
        for folder in ('python', 'compiler_hooks', 'updater'):
            for path in glob.glob(os.path.join(REPO, folder, '**', '*.py'), recursive=True):
                rel = os.path.relpath(path, REPO)
                if rel == 'compiler_hooks/bytecode.py':
                    continue
                with open(path, encoding='utf-8') as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [node.module or ''] if isinstance(node, ast.ImportFrom) and not node.level else [])
                    if any(n.split('.')[0] in ('dis', 'opcode') for n in names):
                        found.add(rel)
        self.assertEqual(sorted(found - PENDING_PY), [], 'use (or add) a function of compiler_hooks/bytecode.py')
        self.assertEqual(sorted(PENDING_PY - found), [], 'converted: remove from PENDING_PY')


if __name__ == '__main__':
    unittest.main()
