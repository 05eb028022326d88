"""Static checks of the shipped Python with the configuration in setup.cfg: flake8 (pyflakes, syntax,
imports below code) over the source folders, mypy over the assembled package, both run by the
configured interpreter with Debian's flake8 and python3-mypy (scripts/setup-deps.sh). Any finding
fails the test. And every suppression marker in the tree names a code that this configuration
checks, so that none hides a finding of a tool that is not run."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import unittest

from tests.plain_python import PLAIN

REPO = os.environ.get('STASIS_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('STASIS_BUILD_DIR') or os.path.join(REPO, 'build')
CONFIG = os.path.join(REPO, 'setup.cfg')
SOURCES = ('python/stasis', 'compiler_hooks', 'updater')   # assembled as build/python/stasis
MARKED = ('python', 'compiler_hooks', 'updater', 'tests', 'bench', 'samples')


def _have(module: str) -> bool:
    return subprocess.run([PLAIN, '-c', f'import {module}'], capture_output=True).returncode == 0


class Static(unittest.TestCase):
    def test_flake8_finds_nothing(self) -> None:
        if not _have('flake8'):
            self.skipTest(f'flake8 is not importable by {PLAIN} (Debian package flake8: scripts/setup-deps.sh)')
        r = subprocess.run([PLAIN, '-m', 'flake8', '--config', CONFIG, *SOURCES], cwd=REPO,
                           capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ''), 'flake8 findings (setup.cfg [flake8])')

    def test_mypy_finds_nothing(self) -> None:
        if not _have('mypy'):
            self.skipTest(f'mypy is not importable by {PLAIN} (Debian package python3-mypy: scripts/setup-deps.sh)')
        package = os.path.join(BUILD, 'python')
        self.assertTrue(os.path.isfile(os.path.join(package, 'stasis', '__init__.py')), 'build first: ' + package)
        r = subprocess.run([PLAIN, '-m', 'mypy', '--config-file', CONFIG, '--cache-dir',
                            os.path.join(BUILD, 'mypy_cache'), '--no-error-summary', '-p', 'stasis'],
                           cwd=package, capture_output=True, text=True)
        # Paths are the assembled package's (stasis/... = python/stasis/, stasis/compiler_hooks/, stasis/updater/).
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ''), 'mypy findings (setup.cfg [mypy])')

    def test_markers_name_codes_of_the_configuration(self) -> None:
        config = configparser.ConfigParser()
        config.read(CONFIG)
        selected = [c.strip() for c in config['flake8']['select'].split(',')]
        bad = []
        for folder in MARKED:
            for root, _, files in os.walk(os.path.join(REPO, folder)):
                for name in files:
                    if not name.endswith('.py'):
                        continue
                    path = os.path.join(root, name)
                    with open(path, encoding='utf-8') as f:
                        for n, line in enumerate(f, 1):
                            where = f'{os.path.relpath(path, REPO)}:{n}'
                            for m in re.finditer(r'#\s*noqa\b(:?)\s*([A-Z0-9, ]*)', line):
                                codes = [c for c in re.split(r'[,\s]+', m.group(2)) if c]
                                if not m.group(1) or not codes:
                                    bad.append(f'{where}: a bare noqa (name the flake8 code)')
                                bad += [f'{where}: noqa {c} is not a code flake8 checks here (select = '
                                        f'{",".join(selected)})' for c in codes
                                        if not any(c.startswith(s) for s in selected)]
                            if re.search(r'#\s*type:\s*ignore(?!\[[a-z-]+(?:,\s*[a-z-]+)*\])', line):
                                bad.append(f'{where}: a type: ignore without its mypy code')
        self.assertEqual(bad, [])


if __name__ == '__main__':
    unittest.main()
