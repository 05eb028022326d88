"""The `stasis` CLI on snapshot files: inspect output, and one distinct exit status with a one-line
message (no traceback) for each kind of bad file."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stasis  # noqa: E402
from snapfile import FORMAT_VERSION_AT, PY_HEXVERSION_AT, with_preamble_patch  # noqa: E402

BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")


def run(*args, env=None):
    return subprocess.run([STASIS, *args], capture_output=True, text=True, env=env, timeout=120)


class Inspect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.dir.name, "data.snap")
        stasis.dump({"names": ["a", "b"] * 10, "n": 10**30}, cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_human_output(self):
        r = run("inspect", self.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"format     version {stasis.FORMAT_VERSION}", r.stdout)
        self.assertIn("cpython 3.11", r.stdout)
        self.assertIn("signature  unsigned", r.stdout)
        self.assertRegex(r.stdout, r"payload    objects: \d+ objects")
        self.assertIn("IntBig 1", r.stdout)

    def test_json_is_stable(self):
        r = run("inspect", "--json", self.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        for key in ("path", "format_version", "engine_version", "python_version", "implementation",
                    "created_unix", "host", "flags", "signature", "payload_kind", "file_size",
                    "compressed_size", "raw_size", "record_count", "ops", "op_bytes", "objects",
                    "memo_count", "max_stack", "chunks"):
            self.assertIn(key, info)
        self.assertEqual(info["format_version"], stasis.FORMAT_VERSION)
        self.assertEqual(info["file_size"], os.path.getsize(self.path))
        self.assertEqual(info["ops"]["EmptyDict"], 1)

    def test_python_dash_m_is_the_same_cli(self):
        r = subprocess.run([sys.executable, "-m", "stasis", "inspect", self.path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("signature", r.stdout)


class BadFileExitStatuses(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        good = stasis.dumps(list(range(10_000)))
        key = os.path.join(cls.dir.name, "key")
        with open(key, "wb") as f:
            f.write(b"k" * 32)
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x40
        cls.key = key
        cls.cases = {
            "empty": (b"", 91, "empty"),
            "garbage": (b"hello world\n" * 50, 91, "magic"),
            "truncated": (good[: len(good) // 2], 92, "cut short"),
            "corrupt": (bytes(flipped), 93, "damaged"),
            "version": (with_preamble_patch(good, FORMAT_VERSION_AT, (99).to_bytes(2, "little")), 94,
                        "format version 99"),
            "python": (with_preamble_patch(good, PY_HEXVERSION_AT, (0x030A00F0).to_bytes(4, "little")), 94,
                       "CPython 3.10.x is needed"),
            "unsigned": (good, 95, "not signed"),
        }
        cls.files = {}
        for name, (data, _, _) in cls.cases.items():
            path = os.path.join(cls.dir.name, name + ".snap")
            with open(path, "wb") as f:
                f.write(data)
            cls.files[name] = path

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_each_kind_has_its_status_and_one_line(self):
        for name, (_, status, fragment) in self.cases.items():
            with self.subTest(name):
                args = ["inspect", self.files[name]]
                if name == "unsigned":
                    args += ["--key-file", self.key]
                r = run(*args)
                self.assertEqual(r.returncode, status, r.stderr)
                self.assertIn(fragment, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertTrue(r.stderr.startswith("stasis: error: "), r.stderr)

    def test_missing_file(self):
        r = run("inspect", os.path.join(self.dir.name, "nope.snap"))
        self.assertEqual(r.returncode, 98)
        self.assertIn("No such file", r.stderr)

    def test_resume_reports_a_bad_snapshot_before_anything_else(self):
        r = run("resume", self.files["truncated"])
        self.assertEqual(r.returncode, 92, r.stderr)


class Usage(unittest.TestCase):
    def test_unknown_command_is_a_usage_error(self):
        r = run("frobnicate")
        self.assertEqual(r.returncode, 64)
        self.assertNotIn("Traceback", r.stderr)

    def test_patch_without_a_patch_file_is_a_usage_error(self):
        r = run("patch", "x.snap")
        self.assertEqual(r.returncode, 64)
        self.assertIn("--source PATH or --update FILE", r.stderr)
        r = run("patch", "x.snap", "fix.py")
        self.assertEqual(r.returncode, 64)
        self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()
