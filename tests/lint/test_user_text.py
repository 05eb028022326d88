"""Text a user reads never names the project's issue numbers: the messages Stasis prints (string
literals of its Python and C++ code, docstrings and comments aside) and the user documentation
(README.md, FORMAT.md, samples/). A user cannot look an issue up; the message must say itself what
is missing or what to do."""
from __future__ import annotations

import ast
import glob
import os
import re
import unittest

REPO = os.environ.get('STASIS_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISSUE = re.compile(r'\bissues?\s*#?\d+', re.I)
PYTHON_DIRS = ('python/stasis', 'compiler_hooks', 'updater')
CPP_DIRS = ('core', 'format', 'snapshot', 'restore', 'compiler_hooks', 'updater', 'engine')
_CPP_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_CPP_COMMENT = re.compile(r'//[^\n]*|/\*.*?\*/', re.S)


def python_messages(path: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal of the module that is not a docstring (f-strings'
    literal parts included)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


class UserText(unittest.TestCase):
    def test_messages_of_the_python_code_name_no_issue(self) -> None:
        found = []
        for folder in PYTHON_DIRS:
            for path in sorted(glob.glob(os.path.join(REPO, folder, '**', '*.py'), recursive=True)):
                for line, text in python_messages(path):
                    if ISSUE.search(text):
                        found.append(f'{os.path.relpath(path, REPO)}:{line}: {text[:80]!r}')
        self.assertEqual(found, [])

    def test_messages_of_the_cpp_code_name_no_issue(self) -> None:
        found = []
        for folder in CPP_DIRS:
            for path in sorted(glob.glob(os.path.join(REPO, folder, '**', '*.[ch]*'), recursive=True)):
                with open(path, encoding='utf-8', errors='replace') as f:
                    source = _CPP_COMMENT.sub('', f.read())
                for literal in _CPP_STRING.findall(source):
                    if ISSUE.search(literal):
                        found.append(f'{os.path.relpath(path, REPO)}: {literal[:80]}')
        self.assertEqual(found, [])

    def test_user_documentation_names_no_issue(self) -> None:
        found = []
        paths = [os.path.join(REPO, 'README.md'), os.path.join(REPO, 'FORMAT.md')]
        paths += sorted(p for p in glob.glob(os.path.join(REPO, 'samples', '**', '*'), recursive=True)
                        if os.path.isfile(p))
        for path in paths:
            with open(path, encoding='utf-8', errors='replace') as f:
                for number, line in enumerate(f, 1):
                    if ISSUE.search(line):
                        found.append(f'{os.path.relpath(path, REPO)}:{number}: {line.strip()[:80]}')
        self.assertEqual(found, [])

    def test_the_check_sees_an_issue_number(self) -> None:
        # The checks above would pass vacuously if the pattern never matched.
        self.assertTrue(ISSUE.search('not available yet (updater, issue 6)'))
        self.assertFalse(ISSUE.search('an issue with the file'))


if __name__ == '__main__':
    unittest.main()
