"""The options of the benchmark scripts (bench/*/run.py) and of the CLI's documentation writer
(python -m stasis.cli_help), each run at a tiny size and checked by what it changes in the output."""
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("STASIS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=240):
    r = subprocess.run([sys.executable, *args], cwd=SOURCE, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


class CliHelp(unittest.TestCase):
    def test_man_and_completion_are_written_where_asked(self):
        with tempfile.TemporaryDirectory() as d:
            man, comp = os.path.join(d, "stasis.1"), os.path.join(d, "stasis.bash")
            rc, out = run("-m", "stasis.cli_help", "--man", man, "--completion", comp)
            self.assertEqual(rc, 0, out)
            with open(man) as f:
                self.assertIn(".TH", f.read())
            with open(comp) as f:
                text = f.read()
            self.assertIn("complete", text)
            self.assertIn("resume", text)


class NumpyBench(unittest.TestCase):
    def test_dir_only_gib_repeat(self):
        with tempfile.TemporaryDirectory() as d:
            rc, out = run("bench/numpy/run.py", "--gib", "0.001", "--repeat", "1", "--dir", d, "--only", "small")
        self.assertEqual(rc, 0, out)
        self.assertIn(f"files in {d}", out)           # --dir
        self.assertIn("1e5-small", out)               # --only keeps the matching workload
        self.assertNotIn("random", out.split("\n", 1)[1])  # and only it


class HeapBench(unittest.TestCase):
    def test_scale_repeat_no_memory(self):
        rc, out = run("bench/heap/run.py", "--scale", "0.005", "--repeat", "1", "--no-memory")
        self.assertIn("strings", out)
        rows = [line for line in out.splitlines() if line.startswith(("instances", "strings"))]
        self.assertTrue(rows, out)
        for line in rows:  # --no-memory: the peak columns are dashes
            self.assertEqual(line.split()[-2:], ["-", "-"], line)


class RequestsBench(unittest.TestCase):
    def test_only_rounds_match(self):
        rc, out = run("bench/requests/run.py", "--only", "startup", "--rounds", "1", "--match", "nothing-matches")
        self.assertIn("stasis resume small.snap", out)  # --only startup runs the start-up section
        self.assertNotIn("latency", out.lower().split("start", 1)[0])  # and not the latency one first


if __name__ == "__main__":
    unittest.main()
