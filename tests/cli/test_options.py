"""Options of the `stasis` commands whose effect no other test checks: each test runs the command
and looks at what the option changed (files written and left alone, signatures, which modules run
rewritten, how long a command waits). The others are listed in test_option_table.py."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = os.path.realpath(sys.executable)  # the configured interpreter (the build's bin/python links to it)

# Counts to N, one safe point per step; prints each step so that resumed runs can be compared.
COUNTER = textwrap.dedent("""
    import sys
    def step(i):
        return i * i
    total = 0
    for i in range(int(sys.argv[1])):
        total += step(i)
        print(i, total, flush=True)
    print("done", total)
""")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-cli-")
        self.env = {**os.environ, "PYTHONHASHSEED": "5"}
        self.env.pop("STASIS_KEY_FILE", None)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def stasis(self, *args, timeout=180, stdin=None):
        return subprocess.run([STASIS, *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout, input=stdin)

    def plain(self, *args):
        return subprocess.run([PLAIN, *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=120).stdout


SLOW_COUNTER = COUNTER.replace("def step(i):", "import time\ndef step(i):\n    time.sleep(0.01)")


class ResumeSnapshotOption(Case):
    def test_a_chain_of_resumes_each_to_a_new_file_leaves_every_snapshot_as_it_was(self):
        prog = self.write("counter.py", SLOW_COUNTER)
        r = self.stasis("run", "--quota", "0.4", "--snapshot", self.path("s0.snap"), prog, "400")
        self.assertEqual(r.returncode, 75, r.stderr)
        out = r.stdout
        digests = {"s0.snap": digest(self.path("s0.snap"))}
        for n in range(1, 4):
            src, dst = self.path(f"s{n - 1}.snap"), self.path(f"s{n}.snap")
            r = self.stasis("resume", src, "--quota", "0.4", "--snapshot", dst)
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertIn(f"suspended into {dst}", r.stderr)
            digests[f"s{n}.snap"] = digest(dst)
            out += r.stdout
            for name, d in digests.items():  # every earlier snapshot byte-identical
                self.assertEqual(digest(self.path(name)), d, name)
        self.assertEqual(len(set(digests.values())), 4)
        final = self.stasis("resume", self.path("s3.snap"))
        self.assertEqual(final.returncode, 0, final.stderr)
        expected = self.plain(prog, "400")
        self.assertEqual(out + final.stdout, expected)
        # Each snapshot is still where it was: resuming the second one again ends the same way.
        again = self.stasis("resume", self.path("s1.snap"), "--snapshot", self.path("other.snap"))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertTrue(expected.endswith(again.stdout), again.stdout[:200])
        self.assertLess(len(again.stdout), len(expected))

    def test_without_snapshot_the_snapshot_resumed_from_is_replaced(self):
        prog = self.write("counter.py", SLOW_COUNTER)
        snap = self.path("c.snap")
        self.assertEqual(self.stasis("run", "--quota", "0.3", "--snapshot", snap, prog, "300").returncode, 75)
        before = digest(snap)
        r = self.stasis("resume", snap, "--quota", "0.3")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertNotEqual(digest(snap), before)

    def test_resume_suspend_after_suspends_again(self):
        """The count starts at the resumed program's next line (it waited for the module body to
        return, so a resumed program never suspended)."""
        prog = self.write("counter.py", COUNTER)
        snap = self.path("c.snap")
        self.assertEqual(self.stasis("run", "--suspend-after", "20", "--snapshot", snap, prog, "200").returncode, 75)
        first = self.stasis("run", "--suspend-after", "20", "--snapshot", self.path("x.snap"), prog, "200").stdout
        r = self.stasis("resume", snap, "--suspend-after", "20", "--snapshot", self.path("n.snap"))
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertTrue(os.path.exists(self.path("n.snap")))
        self.assertTrue(0 < len(r.stdout.splitlines()) <= len(first.splitlines()) + 1, r.stdout)
        rest = self.stasis("resume", self.path("n.snap"))
        self.assertEqual(rest.returncode, 0, rest.stderr)
        self.assertEqual(first + r.stdout + rest.stdout, self.plain(prog, "200"))


class KeyFile(Case):
    def test_signed_snapshots_need_their_key(self):
        prog = self.write("counter.py", SLOW_COUNTER)
        key, other = self.path("key"), self.path("other-key")
        for path in (key, other):
            with open(path, "wb") as f:
                f.write(os.urandom(32))
        snap = self.path("c.snap")
        r = self.stasis("run", "--key-file", key, "--quota", "0.3", "--snapshot", snap, prog, "300")
        self.assertEqual(r.returncode, 75, r.stderr)
        info = self.stasis("inspect", "--json", "--key-file", key, snap)
        self.assertIn('"signature": "verified"', info.stdout)
        before = digest(snap)
        for args in ([], ["--key-file", other]):
            with self.subTest(args=args):
                r = self.stasis("resume", snap, *args)
                self.assertEqual(r.returncode, 95, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertEqual(r.stdout, "")  # nothing of the program ran
                self.assertEqual(digest(snap), before)
        # debug runs the program's code too: only verified
        for args in ([], ["--key-file", other]):
            with self.subTest(debug=args):
                r = self.stasis("debug", snap, *args, stdin="p total\nc\n")
                self.assertEqual(r.returncode, 95, r.stderr)
                self.assertNotIn("(Pdb)", r.stdout)
        r = self.stasis("debug", snap, "--key-file", key, stdin="p total > 0\nc\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(Pdb) True", r.stdout)
        self.assertEqual(digest(snap), before)
        # With the key, and through STASIS_KEY_FILE: the next snapshot is signed with it too.
        r = self.stasis("resume", snap, "--key-file", key, "--quota", "0.3", "--snapshot", self.path("n.snap"))
        self.assertEqual(r.returncode, 75, r.stderr)
        self.env["STASIS_KEY_FILE"] = key
        self.assertIn('"signature": "verified"', self.stasis("inspect", "--json", self.path("n.snap")).stdout)
        r = self.stasis("resume", self.path("n.snap"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("done", r.stdout)

    def test_an_unreadable_key_is_refused_before_the_program_starts(self):
        prog = self.write("p.py", "open('marker', 'w').close()\n")
        r = self.stasis("run", "--key-file", self.path("missing-key"), prog)
        self.assertEqual(r.returncode, 98, r.stderr)
        self.assertIn("missing-key", r.stderr)
        self.assertFalse(os.path.exists(self.path("marker")))


# Prints whether each module runs the resumable form (its loader is the rewriting one).
WHICH = textwrap.dedent("""
    import helper, json
    def kind(m):
        return type(m.__loader__).__name__
    print("helper", kind(helper))
    print("json", kind(json))
""")


class RewriteOptions(Case):
    def kinds(self, *options):
        self.write("helper.py", "X = 1\n")
        prog = self.write("which.py", WHICH)
        r = self.stasis("run", *options, "--snapshot", self.path("w.snap"), prog)
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(line.split() for line in r.stdout.splitlines())

    def test_no_rewrite_keeps_a_module_plain_and_rewrite_selects_one(self):
        default = self.kinds()
        self.assertEqual(default["helper"], "RewritingLoader")  # under the script's directory
        plain = self.kinds("--no-rewrite", "helper", "--no-rewrite", "json*")
        self.assertEqual(plain["helper"], "SourceFileLoader")
        self.assertEqual(plain["json"], "SourceFileLoader")
        # --rewrite adds a module that the selection would leave alone, unless --no-rewrite removes it
        both = self.kinds("--rewrite", "helper", "--no-rewrite", "helper")
        self.assertEqual(both["helper"], "SourceFileLoader")


class DashM(Case):
    def test_module_suspendable_with_a_suspension_option_plain_without(self):
        os.mkdir(self.path("pkgjob"))
        self.write("pkgjob/__init__.py", "")
        self.write("pkgjob/job.py", "import sys, time\nfor i in range(400):\n    time.sleep(0.01)\n"
                   "print('done', sys.argv[1:], __name__)\n")
        snap = self.path("j.snap")
        for options, suspendable in ((["--snapshot", snap], True), ([], False)):
            with self.subTest(options=options):
                p = subprocess.Popen([STASIS, "run", *options, "-m", "pkgjob.job", "x", "-v"], cwd=self.dir,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.procs.append(p)
                time.sleep(1.0)
                r = self.stasis("suspend", str(p.pid))
                out, err = p.communicate(timeout=120)
                if suspendable:
                    self.assertEqual((r.returncode, r.stdout.strip()), (0, snap), r.stderr)
                    self.assertEqual(p.returncode, 75, err)
                    r = self.stasis("resume", snap)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, "done ['x', '-v'] __main__\n")
                else:
                    self.assertEqual(r.returncode, 90, r.stderr)
                    self.assertIn("not running under `stasis run`", r.stderr)
                    self.assertEqual((p.returncode, out), (0, "done ['x', '-v'] __main__\n"), err)


class RewriteCommand(Case):
    def test_prints_the_resumable_form_and_runs_nothing(self):
        mod = self.write("m.py", "open('marker', 'w').close()\ndef f(xs, out):\n    for x in xs:\n        out.append(g(x))\n")
        r = self.stasis("rewrite", mod)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# resume ", r.stdout)
        self.assertIn("out.append(.t0)", r.stdout)  # the call's result is taken into a hidden temporary
        self.assertFalse(os.path.exists(self.path("marker")))
        self.assertEqual(self.stasis("rewrite", self.path("nope.py")).returncode, 98)


class PatchOutput(Case):
    JOB = textwrap.dedent("""
        def rate():
            return 2
        total = 0
        for i in range(40):
            total += rate()
            print(i, total, flush=True)
        print("done", total)
    """)

    def test_o_writes_elsewhere_and_leaves_the_snapshot_alone(self):
        prog = self.write("job.py", self.JOB)
        snap = self.path("job.snap")
        self.assertEqual(self.stasis("run", "--suspend-after", "15", "--snapshot", snap, prog).returncode, 75)
        before = digest(snap)
        fixed = self.write("fixed.py", self.JOB.replace("return 2", "return 3"))
        r = self.stasis("patch", snap, "--source", f"{fixed}=__main__", "-o", self.path("out.snap"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(digest(snap), before)
        self.assertFalse([n for n in os.listdir(self.dir) if ".before-patch" in n])
        old, new = self.stasis("resume", snap), self.stasis("resume", self.path("out.snap"))
        self.assertEqual((old.returncode, new.returncode), (0, 0), old.stderr + new.stderr)
        self.assertNotEqual(old.stdout, new.stdout)
        self.assertGreater(int(new.stdout.split()[-1]), int(old.stdout.split()[-1]))  # 3 per step from then on
        # Without -o: SNAPSHOT is replaced and the previous one kept as SNAPSHOT.before-patch-1.
        r = self.stasis("patch", snap, "--source", f"{fixed}=__main__")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(digest(snap + ".before-patch-1"), before)
        self.assertEqual(digest(snap), digest(snap))


# Never reaches a safe point: the work runs inside a C call (sorted's key function).
STUCK = textwrap.dedent("""
    import time
    open("started", "w").close()
    def key(x):
        time.sleep(0.05)
        return -x
    sorted(range(2000), key=key)
""")


class SuspendTimeout(Case):
    def start_stuck(self, safe_point_timeout: str) -> subprocess.Popen:
        """STUCK under `stasis run`, once it has started (sorted() calls its key from C: no safe point)."""
        prog = self.write("stuck.py", STUCK)
        p = subprocess.Popen([STASIS, "run", "--safe-point-timeout", safe_point_timeout, "--snapshot",
                              self.path("s.snap"), prog],
                             cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.path("started")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # its control record is written before the program starts
        return p

    def test_suspend_gives_up_after_timeout_and_the_process_keeps_running(self):
        p = self.start_stuck("60")
        t = time.monotonic()
        r = self.stasis("suspend", str(p.pid), "--timeout", "1.5")
        waited = time.monotonic() - t
        self.assertEqual(r.returncode, 99, r.stderr)
        self.assertIn("did not suspend within 1.5 s", r.stderr)
        self.assertGreaterEqual(waited, 1.5)
        self.assertLess(waited, 30)
        self.assertIsNone(p.poll())  # still running
        self.assertFalse(os.path.exists(self.path("s.snap")))

    def test_suspend_reports_at_once_when_the_program_gives_up(self):
        """The program's --safe-point-timeout (1 s) ends the request long before suspend's own
        --timeout (60 s): suspend says why at once, and the program keeps running."""
        p = self.start_stuck("1")
        t = time.monotonic()
        r = self.stasis("suspend", str(p.pid), "--timeout", "60")
        waited = time.monotonic() - t
        self.assertEqual(r.returncode, 99, r.stderr)
        self.assertIn("could not suspend", r.stderr)
        self.assertIn("called from C code", r.stderr)  # the program's own reason: sorted() calls key
        self.assertLess(waited, 30)
        self.assertIsNone(p.poll())
        self.assertFalse(os.path.exists(self.path("s.snap")))


class Help(Case):
    def test_topics_and_commands(self):
        for topic, fragment in (("exit-status", "SignatureError"), ("environment", "STASIS_KEY_FILE"),
                                ("environment", "STASIS_CONTROL_DIR"), ("suspension", "--quota"),
                                ("signing", "HMAC-SHA256"), ("resume", "--snapshot PATH"), ("run", "-m MODULE")):
            with self.subTest(topic=topic):
                r = self.stasis("help", topic)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(fragment, r.stdout)
        r = self.stasis("help", "nope")
        self.assertEqual(r.returncode, 64)
        self.assertIn("exit-status", r.stderr)
        top = self.stasis("--help")
        self.assertEqual(top.returncode, 0)
        for word in ("run", "resume", "suspend", "restart", "inspect", "rewrite", "patch", "debug", "ctl",
                     "exit-status", "environment"):
            self.assertIn(word, top.stdout)

    def test_run_help_is_printed_and_nothing_runs(self):
        prog = self.write("p.py", "open('marker', 'w').close()\n")
        for flag in ("--help", "-h"):
            r = self.stasis("run", "--quota", "5", flag, prog)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: stasis run [options] SCRIPT", r.stdout)
            self.assertFalse(os.path.exists(self.path("marker")))
        # after SCRIPT, --help is the program's own argument
        r = self.stasis("run", self.write("q.py", "import sys; print(sys.argv[1:])\n"), "--help")
        self.assertEqual(r.stdout.strip(), "['--help']")


if __name__ == "__main__":
    unittest.main()
