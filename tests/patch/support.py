"""Helpers of the patch tests: a program written to a fresh directory, run under Stasis until it
suspends (or crashes), edited in place as a user would, patched, resumed in a fresh process; its
output compared byte for byte with a plain run of the program that shows what should happen."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import unittest
from typing import List, Sequence

from tests.plain_python import PLAIN

BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")


class Result:
    def __init__(self, r: subprocess.CompletedProcess):
        self.rc, self.out, self.err = r.returncode, r.stdout.decode(), r.stderr.decode()

    def __repr__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


class PatchTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="stasis-patch-")
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["PYTHONHASHSEED"] = "1234"

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def write(self, name: str, text: str) -> str:
        with open(self.path(name), "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        return self.path(name)

    def stasis(self, *args: str, stdin: str = "") -> Result:
        return Result(subprocess.run([STASIS, *args], cwd=self.dir, env=self.env, input=stdin.encode(),
                                     capture_output=True, timeout=300))

    def plain(self, name: str) -> str:
        r = subprocess.run([PLAIN, name], cwd=self.dir, env=self.env, capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout.decode()

    def suspended(self, program: str, *options: str) -> Result:
        r = self.stasis("run", *options, program)
        self.assertEqual(r.rc, 75, r)
        return r

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def listing(self) -> List[str]:
        return sorted(os.listdir(self.dir))
