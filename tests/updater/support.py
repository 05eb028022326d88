"""Shared helpers of the updater's end-to-end tests: a private control directory, target
programs started as real processes with a readiness handshake on stdout, and `stasis ctl` run
in-process with its output captured."""
from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from typing import List, Optional, Sequence, Tuple

from stasis.updater import ctl

READY_TIMEOUT = 20.0
# `stasis run`, beside the build's interpreter (build/bin/python, which runs these tests).
STASIS_RUN = [os.path.join(os.path.dirname(sys.executable), "stasis"), "run"]


class TargetTestCase(unittest.TestCase):
    """Each test gets a fresh control directory (mode 0700) and temp dir; targets are killed at the end."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="stasis-upd-")
        self.control_dir = os.path.join(self.tmp, "control")
        os.mkdir(self.control_dir, 0o700)
        self._old_env = os.environ.get("STASIS_CONTROL_DIR")
        os.environ["STASIS_CONTROL_DIR"] = self.control_dir
        self.procs: List[subprocess.Popen] = []
        self._lines: dict = {}

    def tearDown(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        if self._old_env is None:
            os.environ.pop("STASIS_CONTROL_DIR", None)
        else:
            os.environ["STASIS_CONTROL_DIR"] = self._old_env
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def start(self, name: str, text: str, *args: str,
              runner: Sequence[str] = (sys.executable,)) -> Tuple[subprocess.Popen, str]:
        """Starts a target program (with `runner`, e.g. STASIS_RUN); returns it and its first stdout
        line (it prints one when ready)."""
        path = self.write(name, text)
        p = subprocess.Popen([*runner, path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=self.tmp)
        self.procs.append(p)
        line = self.readline(p)
        return p, line

    def readline(self, p: subprocess.Popen) -> str:
        """The target's next stdout line, waiting at most READY_TIMEOUT.  A reader thread per target
        feeds a queue: waiting on the pipe itself (select) missed a second line that had already
        arrived in the same read as the first, and then timed out."""
        lines = self._lines.get(p.pid)
        if lines is None:
            lines = self._lines[p.pid] = queue.Queue()

            def pump(stream=p.stdout, out=lines) -> None:
                try:
                    for text in iter(stream.readline, ""):
                        out.put(text)
                except (OSError, ValueError):
                    pass  # closed by tearDown
                out.put(None)  # EOF
            threading.Thread(target=pump, daemon=True).start()
        try:
            line = lines.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            self.fail(f"target did not answer within {READY_TIMEOUT} s")
        if line is None:
            lines.put(None)
            self.fail(f"target exited (status {p.wait()}): {p.stderr.read()}")
        return line.strip()

    def ctl(self, *argv: str, expect: Optional[int] = 0) -> Tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = ctl.main([str(a) for a in argv])
        if expect is not None:
            self.assertEqual(status, expect, f"stasis ctl {' '.join(map(str, argv))}: status {status}\n"
                                             f"stdout: {out.getvalue()}\nstderr: {err.getvalue()}")
        return status, out.getvalue(), err.getvalue()
