"""`make install` puts a working `stasis` into a prefix, usable outside the repository."""
import os
import subprocess
import sys
import tempfile
import unittest

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


if __name__ == "__main__":
    unittest.main()
