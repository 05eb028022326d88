"""CPython's own tests, plainly and with the `test` package rewritten: the fast subset of
tests/conformance/run.py (the full list is `make conformance`).  Counts must be identical."""
from __future__ import annotations

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsupport import REPO  # noqa: E402

RUNNER = os.path.join(REPO, 'tests', 'conformance', 'run.py')


class FastConformance(unittest.TestCase):
    def test_fast_subset_identical(self) -> None:
        try:
            import test.support  # noqa: F401  (Debian: libpython3.11-testsuite)
        except ImportError:
            self.skipTest('CPython test suite not installed (Debian package libpython3.11-testsuite)')
        p = subprocess.run([sys.executable, RUNNER, '--fast', '--jobs', '2'], capture_output=True,
                           text=True, timeout=600)
        sys.stdout.write(p.stdout)
        self.assertIn('modules identical', p.stdout, p.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == '__main__':
    unittest.main()
