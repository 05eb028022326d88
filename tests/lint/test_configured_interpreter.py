"""Tests compare Stasis against the interpreter the build was configured with (`make build
PYTHON=...`), which the build's bin/python links to, never a hard-coded path."""
from __future__ import annotations

import glob
import os
import unittest

REPO = os.environ.get('STASIS_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARD_CODED = '/usr/bin/' + 'python3'  # split, so that this file does not match itself


class ConfiguredInterpreter(unittest.TestCase):
    def test_no_test_names_a_system_interpreter(self) -> None:
        found = []
        for path in sorted(glob.glob(os.path.join(REPO, 'tests', '**', '*.py'), recursive=True)):
            with open(path, encoding='utf-8', errors='replace') as f:
                for number, line in enumerate(f, 1):
                    if HARD_CODED in line:
                        found.append(f'{os.path.relpath(path, REPO)}:{number}: {line.strip()[:80]}')
        self.assertEqual(found, [])


if __name__ == '__main__':
    unittest.main()
