"""`make install` puts a working `stasis` into a prefix, usable outside the repository."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from tests.plain_python import PLAIN

BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
PLAIN = os.path.realpath(sys.executable)  # the configured interpreter (the build's bin/python links to it)


class Install(unittest.TestCase):
    def test_installed_cli_works_outside_the_tree(self):
        with tempfile.TemporaryDirectory() as prefix, tempfile.TemporaryDirectory() as elsewhere:
            r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            exe = os.path.join(prefix, "bin", "stasis")
            self.assertTrue(os.access(exe, os.X_OK))
            snap = os.path.join(elsewhere, "x.snap")
            code = f"import stasis; stasis.dump({{'k': [1, 2]}}, {snap!r})"
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            env["PYTHONPATH"] = os.path.join(prefix, "lib", "stasis", "python")
            r = subprocess.run([PLAIN, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            env.pop("PYTHONPATH")
            r = subprocess.run([exe, "inspect", "--json", snap], cwd=elsewhere, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('"payload_kind": "objects"', r.stdout)
            self.check_man_page(os.path.join(prefix, "share", "man", "man1", "stasis.1"))
            self.check_completion(os.path.join(prefix, "share", "bash-completion", "completions", "stasis"))

    def check_man_page(self, page):
        self.assertTrue(os.path.isfile(page), "the man page is not installed")
        with open(page) as f:
            roff = f.read()
        self.assertTrue(roff.startswith(".TH STASIS 1 "), roff[:80])
        for section in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT"):
            self.assertIn(f".SH {section}", roff)
        self.assertIn("\\-\\-quota", roff)  # every option, from the parser
        if shutil.which("man"):
            r = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                               env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "100", "LC_ALL": "C.UTF-8"})
            self.assertEqual(r.returncode, 0, r.stderr)
            text = r.stdout
        elif shutil.which("nroff"):
            r = subprocess.run(["nroff", "-man", page], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            text = r.stdout
        else:
            self.skipTest("neither man nor nroff to render the page")
        words = " ".join(text.split())
        for fragment in ("stasis resume SNAPSHOT", "--snapshot-on-crash", "--safe-point-timeout SECONDS",
                         "STASIS_KEY_FILE", "SignatureError"):
            self.assertIn(fragment, words.replace("\u2010", "-"))
        self.assertNotIn("\\f", text)  # no roff escape left unrendered

    def check_completion(self, script):
        self.assertTrue(os.path.isfile(script), "the bash completion is not installed")
        def complete(*words):
            cmd = (f"source {script}; COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; _stasis; "
                   "echo ${COMPREPLY[@]}")
            r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.split()
        self.assertIn("resume", complete("stasis", "res"))
        self.assertEqual(complete("stasis", "resu"), ["resume"])
        self.assertEqual(complete("stasis", "resume", "x.snap", "--qu"), ["--quota"])
        self.assertIn("USR1", complete("stasis", "run", "--signal", "U"))
        self.assertEqual(complete("stasis", "help", "exit"), ["exit-status"])


if __name__ == "__main__":
    unittest.main()
