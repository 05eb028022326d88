"""Bad command lines of run and resume (and the snapshot argument of every command): one line on
stderr naming the problem, exit status 64 (98 for a snapshot or key file that cannot be read), and
none of the program has run (it would write a marker file first thing)."""
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")

PROGRAM = "import time\nopen('marker', 'a').write('x')\nfor i in range(200):\n    time.sleep(0.01)\nprint('done')\n"

BAD = [
    (["--quota", "-1"], "--quota"), (["--quota", "abc"], "--quota"), (["--quota", "0"], "--quota"),
    (["--quota", "nan"], "--quota"), (["--quota=inf"], "--quota"),
    (["--suspend-after", "-3"], "--suspend-after"), (["--suspend-after", "2.5"], "--suspend-after"),
    (["--signal", "NOPE"], "NOPE"), (["--signal", "USR1,NOPE"], "NOPE"), (["--signal", "KILL"], "KILL"),
    (["--safe-point-timeout", "-1"], "--safe-point-timeout"), (["--safe-point-timeout", "x"], "--safe-point-timeout"),
    (["--checkpoint-every", "0"], "--checkpoint-every"), (["--keep", "2"], "--checkpoint-every"),
    (["--checkpoint-every", "1", "--keep", "0"], "--keep"),
    (["--snapshot", "adir"], "is a directory"), (["--snapshot", "nodir/x.snap"], "does not exist"),
    (["--snapshot-on-crash=adir"], "is a directory"),
    (["--bogus"], "--bogus"), (["--tcp-established=yes"], "--tcp-established"),
]


class BadValues(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stasis-badvalues-")
        os.mkdir(os.path.join(cls.dir, "adir"))
        cls.prog = os.path.join(cls.dir, "prog.py")
        with open(cls.prog, "w") as f:
            f.write(PROGRAM)
        cls.snap = os.path.join(cls.dir, "prog.snap")
        r = cls.stasis("run", "--suspend-after", "5", "--snapshot", cls.snap, cls.prog)
        assert r.returncode == 75, r.stderr
        os.remove(os.path.join(cls.dir, "marker"))
        with open(cls.snap, "rb") as f:
            cls.snap_bytes = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def stasis(cls, *args):
        env = {k: v for k, v in os.environ.items() if k != "STASIS_KEY_FILE"}
        return subprocess.run([STASIS, *args], cwd=cls.dir, env=env, capture_output=True, text=True, timeout=120)

    def assert_refused(self, r, status, fragment):
        self.assertEqual(r.returncode, status, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(fragment, lines[0])
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "marker")), "the program ran")
        with open(self.snap, "rb") as f:
            self.assertEqual(f.read(), self.snap_bytes)

    def test_run(self):
        for args, fragment in BAD:
            with self.subTest(args=args):
                r = self.stasis("run", *args, self.prog)
                self.assert_refused(r, 64, fragment)
                if "--bogus" not in args:
                    self.assertIn("stasis run --help", r.stderr)

    def test_resume(self):
        for args, fragment in BAD:
            with self.subTest(args=args):
                self.assert_refused(self.stasis("resume", self.snap, *args), 64, fragment)

    def test_run_without_a_program(self):
        self.assert_refused(self.stasis("run", "--quota", "5"), 64, "SCRIPT or -m MODULE")
        self.assert_refused(self.stasis("run", "--quota"), 64, "--quota needs a value")
        self.assert_refused(self.stasis("run", "-m"), 64, "-m needs a module name")

    def test_a_directory_as_the_snapshot_is_a_usage_error(self):
        for command in (["resume"], ["inspect"], ["debug"], ["patch", "--update", "u.py"]):
            with self.subTest(command=command[0]):
                r = self.stasis(command[0], "adir", *command[1:])
                self.assert_refused(r, 64, "adir is a directory, not a snapshot file")
        r = self.stasis("patch", self.snap, "--update", self.prog, "-o", "adir")
        self.assert_refused(r, 64, "is a directory")

    def test_a_missing_snapshot_or_key_file_is_status_98(self):
        for command in (["resume"], ["inspect"], ["debug"]):
            with self.subTest(command=command[0]):
                self.assert_refused(self.stasis(command[0], "missing.snap"), 98, "missing.snap")
        self.assert_refused(self.stasis("resume", self.snap, "--key-file", "nokey"), 98, "nokey")
        self.assert_refused(self.stasis("run", "--key-file", "nokey", self.prog), 98, "nokey")

    def test_a_fifo_is_refused_not_waited_on(self):
        fifo = os.path.join(self.dir, "pipe.snap")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        for command in (["resume"], ["inspect"], ["debug"], ["patch", "--update", self.prog]):
            with self.subTest(command=command[0]):
                self.assert_refused(self.stasis(command[0], fifo, *command[1:]), 98, "not a regular file")

    def test_other_commands(self):
        self.assert_refused(self.stasis("suspend", "notapid"), 64, "invalid int value")
        self.assert_refused(self.stasis("restart", "1", "--timeout", "0"), 64, "--timeout")
        self.assert_refused(self.stasis("inspect", self.snap, "--bogus"), 64, "--bogus")
        self.assert_refused(self.stasis("frobnicate"), 64, "frobnicate")


if __name__ == "__main__":
    unittest.main()
