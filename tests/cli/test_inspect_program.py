"""`stasis inspect` of a program snapshot: where every thread stands (file, line, function, source,
locals), the heap, modules, command, suspension and patches — as text and as --json — built from
the records without running or importing anything of the program; and what `stasis run`/`resume`
say on stderr about a suspension (latency, size, progress only on a terminal)."""
import json
import os
import pty
import re
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

# The main thread suspends itself in compute() (stasis.suspend() stops at the next line: SLEEP_LINE);
# a daemon worker is blocked in Event.wait() called from worker() at WAIT_LINE.
MAIN_PROGRAM = textwrap.dedent("""\
    import threading, time
    import stasis
    import helper

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    def worker(items):
        total = sum(items)
        ev.wait()  # WAIT_LINE

    def compute(n):
        data = [Point(i, i * 2) for i in range(n)]
        label = "clear\\x1b[2J\\nscreen"
        stasis.suspend()
        time.sleep(0.01)  # SLEEP_LINE
        return len(data)

    ev = threading.Event()
    t = threading.Thread(target=worker, args=([1, 2, 3],), name="w\\x1b[31mred", daemon=True)
    t.start()
    while not helper.waiting(t):
        time.sleep(0.01)
    print(compute(1000))
    print("X is", helper.X)
""")

# Loaded by the program; writes a marker when imported, and a class whose methods write markers:
# inspect must never import it or run them.
HELPER = textwrap.dedent("""\
    import os, sys
    X = 1

    def _mark(name):
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "a") as f:
            f.write("imported\\n")

    _mark("imported.marker")

    class Trap:
        def __repr__(self):
            open(__import__("os").path.join(self.dir, "repr.marker"), "w").close()
            return "trap"
        def __setstate__(self, state):
            open(__import__("os").path.join(state["dir"], "setstate.marker"), "w").close()
            self.__dict__.update(state)

    trap = Trap()
    trap.dir = os.path.dirname(os.path.abspath(__file__))

    def waiting(t):
        # the worker is inside Event.wait() once its frame shows it
        f = sys._current_frames().get(t.ident)
        while f is not None:
            if f.f_code.co_name == "wait":
                return True
            f = f.f_back
        return False
""")

# The worker thread suspends the program: it stops at the next line of run_job (JOB_LINE); the
# main thread is blocked in join().
WORKER_PROGRAM = textwrap.dedent("""\
    import sys, threading, time
    import stasis

    def main_in_join():
        f = sys._current_frames().get(threading.main_thread().ident)
        while f is not None:
            if f.f_code.co_name == "join":
                return True
            f = f.f_back
        return False

    def run_job(count):
        while not main_in_join():
            time.sleep(0.01)
        squares = [i * i for i in range(count)]
        stasis.suspend()
        squares.append(-1)  # JOB_LINE
        return squares

    t = threading.Thread(target=run_job, args=(25,), name="job-thread")
    t.start()
    t.join()
    print("done")
""")


CRASH_PROGRAM = textwrap.dedent("""\
    def parse(rows):
        out = {}
        for r in rows:
            out[r] = table[r]  # RAISES
        return out

    table = {"a": 1}
    print(parse(["a", "gamma"]))
""")


def line_of(source: str, marker: str) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if marker in text)


class InspectCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stasis-inspect-")
        cls.env = {**os.environ, "PYTHONHASHSEED": "7"}
        cls.env.pop("STASIS_PROGRESS_DELAY", None)
        cls.prog = cls.write("main.py", MAIN_PROGRAM)
        cls.write("helper.py", HELPER)
        cls.snap = os.path.join(cls.dir, "main.snap")
        cls.run_result = cls.stasis("run", cls.prog)
        assert cls.run_result.returncode == 75, cls.run_result.stderr

    MARKERS = ("imported.marker", "repr.marker", "setstate.marker")

    def remove_markers(self):
        for marker in self.MARKERS:
            path = os.path.join(self.dir, marker)
            if os.path.exists(path):
                os.unlink(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def write(cls, name, text):
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    @classmethod
    def stasis(cls, *args, env=None, timeout=300):
        return subprocess.run([STASIS, *args], cwd=cls.dir, env=env or cls.env, capture_output=True, text=True,
                              timeout=timeout)

    def inspect_json(self, *args, snap=None):
        r = self.stasis("inspect", snap or self.snap, "--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def thread(self, data, main):
        return next(t for t in data["threads"] if t["main"] == main)

    # --- where each thread stands ------------------------------------------------------------

    def test_json_main_thread_at_known_line_with_locals(self):
        data = self.inspect_json()
        main = self.thread(data, True)
        self.assertEqual(main["name"], "MainThread")
        self.assertIsInstance(main["ident"], int)
        inner = main["frames"][-1]  # innermost last
        self.assertEqual(inner["file"], self.prog)
        self.assertEqual(inner["function"], "compute")
        self.assertEqual(inner["line"], line_of(MAIN_PROGRAM, "SLEEP_LINE"))
        self.assertEqual(inner["source"], "time.sleep(0.01)  # SLEEP_LINE")
        local = {v["name"]: v for v in inner["locals"]}
        self.assertEqual(local["n"]["repr"], "1000")
        self.assertEqual(local["n"]["type"], "int")
        self.assertEqual(local["data"]["type"], "list")
        self.assertEqual(local["data"]["len"], 1000)
        self.assertTrue(local["data"]["repr"].startswith("[Point(x=0, y=0), Point(x=1, y=2)"), local["data"])
        self.assertGreater(local["data"]["bytes"], 1000 * 56)  # 1000 instances and their dicts
        outer = main["frames"][0]
        self.assertEqual((outer["function"], outer["line"]), ("<module>", line_of(MAIN_PROGRAM, "print(compute")))
        self.assertEqual(main["state"], "running")
        self.assertFalse(main["daemon"])
        # the script's frame shows its data globals: not modules, functions, classes, dunders
        names = {v["name"]: v for v in outer["locals"]}
        self.assertEqual(names["ev"]["type"], "threading.Event")
        self.assertEqual(names["t"]["type"], "threading.Thread")
        for hidden in ("threading", "compute", "Point", "__name__", "helper"):
            self.assertNotIn(hidden, names)

    def test_crash_snapshot_shows_the_raising_thread(self):
        prog = self.write("crash.py", CRASH_PROGRAM)
        r = self.stasis("run", "--snapshot-on-crash", prog)
        self.assertEqual(r.returncode, 1, r.stderr)
        data = self.inspect_json(snap=os.path.join(self.dir, "crash.crash.snap"))
        self.assertEqual(data["crash"]["summary"], "KeyError: 'gamma'")
        main = self.thread(data, True)
        self.assertEqual((main["state"], main["call"]), ("raising", "KeyError: 'gamma'"))
        inner = main["frames"][-1]
        self.assertEqual((inner["function"], inner["line"]), ("parse", line_of(CRASH_PROGRAM, "RAISES")))
        self.assertEqual({v["name"]: v["repr"] for v in inner["locals"]}["r"], "'gamma'")
        text = self.stasis("inspect", os.path.join(self.dir, "crash.crash.snap")).stdout
        self.assertIn('"MainThread" (main thread; raising KeyError: \'gamma\')', text)
        self.assertIn("\ncrash      KeyError: 'gamma' in thread MainThread\n", text)

    def test_json_worker_thread_blocked_in_a_call(self):
        data = self.inspect_json()
        worker = self.thread(data, False)
        self.assertEqual(worker["name"], "w\x1b[31mred")
        self.assertTrue(worker["daemon"])
        frames = {f["function"]: f for f in worker["frames"]}
        f = frames["worker"]
        self.assertEqual((f["file"], f["line"]), (self.prog, line_of(MAIN_PROGRAM, "WAIT_LINE")))
        local = {v["name"]: v for v in f["locals"]}
        self.assertEqual(local["total"]["repr"], "6")
        self.assertEqual(local["items"]["repr"], "[1, 2, 3]")
        # Event.wait -> Condition.wait -> waiter.acquire(), a C call: blocked there.
        self.assertEqual(worker["state"], "blocked")
        self.assertIn("acquire(", worker["call"])
        self.assertEqual(worker["frames"][-1]["file"], __import__("threading").__file__)

    def test_json_worker_thread_suspended_at_known_line(self):
        prog = self.write("job.py", WORKER_PROGRAM)
        snap = os.path.join(self.dir, "job.snap")
        r = self.stasis("run", prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        data = self.inspect_json(snap=snap)
        job = next(t for t in data["threads"] if t["name"] == "job-thread")
        self.assertFalse(job["main"])
        inner = job["frames"][-1]
        self.assertEqual((inner["file"], inner["function"], inner["line"]),
                         (prog, "run_job", line_of(WORKER_PROGRAM, "JOB_LINE")))
        local = {v["name"]: v for v in inner["locals"]}
        self.assertEqual(local["count"]["repr"], "25")
        self.assertEqual(local["squares"]["len"], 25)
        self.assertTrue(local["squares"]["repr"].startswith("[0, 1, 4, 9"), local["squares"])
        self.assertEqual(job["state"], "running")
        main = self.thread(data, True)  # in t.join() -> _wait_for_tstate_lock -> lock.acquire(...)
        self.assertEqual((main["frames"][0]["function"], main["frames"][0]["line"]),
                         ("<module>", line_of(WORKER_PROGRAM, "t.join()")))
        self.assertIn("join", [f["function"] for f in main["frames"]])
        self.assertEqual(main["state"], "blocked")
        self.assertIn("acquire(", main["call"])
        self.assertEqual(data["suspension"]["trigger"], "api")

    def test_text_shows_threads_frames_sources_and_locals(self):
        r = self.stasis("inspect", self.snap)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn(f'\n  compute ({self.prog}:{line_of(MAIN_PROGRAM, "SLEEP_LINE")})\n'
                      "    time.sleep(0.01)  # SLEEP_LINE\n", out)
        self.assertLess(out.index(f"  <module> ({self.prog}:"), out.index(f"  compute ({self.prog}:"))  # outermost first
        self.assertRegex(out, r"\n +n += 1000  \[int, 28 B\]\n")
        self.assertIn('Thread ', out)
        self.assertIn('"MainThread" (main thread; running)', out)
        self.assertRegex(out, r'"w\\x1b\[31mred" \(daemon; blocked in waiter\.acquire\(\)\)')
        # the header lines of every snapshot come first, then the program
        self.assertTrue(out.startswith(f"snapshot   {self.snap} ("), out[:200])
        self.assertIn("\ncommand    " + self.prog + "\n", out)
        self.assertIn("\nhash seed  7\n", out)
        self.assertRegex(out, r"\nsuspended  by stasis\.suspend\(\): requested \d{4}-\d\d-\d\d "
                              r"\d\d:\d\d:\d\d\.\d{3} UTC, captured \d+\.\d ms after the request")
        self.assertRegex(out, r"\nmodules    (__main__|helper) \(\d+ globals, [\d.]+ (B|KiB|MiB)\), "
                              r"(__main__|helper) \(")
        self.assertRegex(out, r"\n +1,000 +[\d.]+ KiB  __main__\.Point\n")
        self.assertIn("\npatches    none\n", out)

    def test_control_characters_are_escaped(self):
        r = self.stasis("inspect", self.snap)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\x1b", r.stdout)
        self.assertIn(r"label = 'clear\x1b[2J\nscreen'", r.stdout)
        self.assertIn(r'"w\x1b[31mred"', r.stdout)
        for line in r.stdout.splitlines():
            self.assertTrue(line.isprintable(), repr(line))
        # JSON keeps the value, escaped by JSON itself
        r = self.stasis("inspect", self.snap, "--json")
        self.assertNotIn("\x1b", r.stdout)
        local = {v["name"]: v for v in self.thread(json.loads(r.stdout), True)["frames"][-1]["locals"]}
        self.assertEqual(local["label"]["repr"], repr("clear\x1b[2J\nscreen"))

    def test_suspension_and_program_data(self):
        data = self.inspect_json()
        s = data["suspension"]
        self.assertEqual(s["trigger"], "api")
        self.assertIsInstance(s["requested_at"], float)
        self.assertLessEqual(s["requested_at"], s["captured_at"])
        self.assertLess(abs(s["captured_at"] - time.time()), 3600)
        self.assertAlmostEqual(s["latency_ms"], (s["captured_at"] - s["requested_at"]) * 1000, places=2)
        self.assertEqual(data["command"], ["script", os.path.realpath(self.prog)])
        self.assertEqual(data["hash_seed"], 7)
        self.assertEqual(sorted(m["name"] for m in data["modules"]), ["__main__", "helper"])
        types = {r["type"]: r for r in data["heap"]["by_type"]}
        self.assertEqual(types["__main__.Point"]["count"], 1000)
        self.assertEqual(data["patches"], [])

    def test_patch_history(self):
        upd = self.write("upd.py", "import helper\nhelper.X = 2\n")
        out = os.path.join(self.dir, "patched.snap")
        r = self.stasis("patch", self.snap, "--update", upd, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = self.inspect_json(snap=out)
        self.assertEqual(len(data["patches"]), 1)
        p = data["patches"][0]
        self.assertEqual(p["by"], "stasis patch")
        self.assertEqual([f["path"] for f in p["files"]], [upd])
        text = self.stasis("inspect", out).stdout
        self.assertIn("\npatches    1\n", text)
        self.assertRegex(text, r"\n  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by stasis patch\n"
                               r"    update module: " + re.escape(upd) + r" \(sha256 [0-9a-f]{16}\)\n")

    def test_library_objects_shown_by_their_contents(self):
        try:
            import numpy  # noqa: F401
            has_numpy = True
        except ImportError:
            has_numpy = False
        prog = self.write("libs.py", textwrap.dedent(f"""\
            import collections, stasis
            {"import numpy" if has_numpy else ""}
            def hold():
                d = collections.deque([1, 2, 3])
                od = collections.OrderedDict(a=1)
                {"grid = numpy.zeros((4, 5))" if has_numpy else ""}
                stasis.suspend()
                return d
            hold()
        """))
        r = self.stasis("run", prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        data = self.inspect_json(snap=os.path.join(self.dir, "libs.snap"))
        local = {v["name"]: v for v in self.thread(data, True)["frames"][-1]["locals"]}
        self.assertEqual((local["d"]["repr"], local["d"]["len"]), ("deque([1, 2, 3])", 3))
        self.assertEqual(local["od"]["repr"], "OrderedDict({'a': 1})")
        if has_numpy:
            self.assertEqual(local["grid"]["repr"], "ndarray(shape=(4, 5), dtype='f8')")
            self.assertGreaterEqual(local["grid"]["bytes"], 4 * 5 * 8)

    # --- options ---------------------------------------------------------------------------------

    def test_no_locals(self):
        data = self.inspect_json("--no-locals")
        for t in data["threads"]:
            for f in t["frames"]:
                self.assertNotIn("locals", f)
        with_locals = self.inspect_json("--locals")
        self.assertTrue(any(f.get("locals") for t in with_locals["threads"] for f in t["frames"]))
        local_line = re.compile(r"\n        \w+ += .*  \[[^\]]*, [\d.]+ (B|KiB|MiB)\]\n")
        text = self.stasis("inspect", self.snap, "--no-locals").stdout
        self.assertNotRegex(text, local_line)
        self.assertIn("  compute (", text)
        self.assertRegex(self.stasis("inspect", self.snap).stdout, local_line)
        self.assertRegex(self.stasis("inspect", self.snap, "--locals").stdout, local_line)

    def test_depth(self):
        full = self.inspect_json()
        data = self.inspect_json("--depth", "1")
        for t, whole in zip(data["threads"], full["threads"]):
            self.assertEqual(len(t["frames"]), 1)
            self.assertEqual(t["frames"][0], whole["frames"][-1])  # the innermost one
            self.assertEqual(t["frames_omitted"], len(whole["frames"]) - 1)
        text = self.stasis("inspect", self.snap, "--depth", "1").stdout
        self.assertNotIn("  <module> (", text)
        self.assertIn("  compute (", text)
        self.assertIn("outer frame(s) not shown (--depth)", text)
        r = self.stasis("inspect", self.snap, "--depth", "0")
        self.assertEqual(r.returncode, 64)
        self.assertIn("--depth", r.stderr)

    def test_top(self):
        full = self.inspect_json()
        self.assertGreater(len(full["heap"]["by_type"]), 2)
        data = self.inspect_json("--top", "2")
        self.assertEqual(data["heap"]["by_type"], full["heap"]["by_type"][:2])
        self.assertEqual(len(data["heap"]["by_module"]), 2)
        self.assertGreaterEqual(data["heap"]["by_type"][0]["bytes"], data["heap"]["by_type"][1]["bytes"])
        text = self.stasis("inspect", self.snap, "--top", "2").stdout
        self.assertIn(f"by type (top 2 of {full['heap']['types']}):", text)
        self.assertEqual(self.stasis("inspect", self.snap, "--top", "0").returncode, 64)

    def test_heap_snapshot_keeps_its_output(self):
        path = os.path.join(self.dir, "state.snap")
        subprocess.run([os.path.join(BUILD, "bin", "python"), "-c",
                        f"import stasis; stasis.dump({{'a': [1, 2]}}, {path!r})"], check=True)
        r = self.stasis("inspect", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("payload    objects: ", r.stdout)
        self.assertNotIn("Thread", r.stdout)
        data = self.inspect_json(snap=path)
        self.assertNotIn("threads", data)
        self.assertEqual(data["payload_kind"], "objects")

    # --- safety: nothing of the program runs or is imported ------------------------------------

    def test_inspect_imports_and_runs_nothing_of_the_program(self):
        self.remove_markers()  # the run made one (and a patch, which loads the program, may have)
        for args in ((), ("--json",)):
            r = self.stasis("inspect", self.snap, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        for marker in self.MARKERS:
            self.assertFalse(os.path.exists(os.path.join(self.dir, marker)), marker)
        data = self.inspect_json()
        modules = {m["name"]: m for m in data["modules"]}
        self.assertGreater(modules["helper"]["globals"], 3)  # described from the records all the same

    def test_damaged_snapshot_fails_cleanly(self):
        bad = os.path.join(self.dir, "bad.snap")
        with open(self.snap, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        with open(bad, "wb") as f:
            f.write(data)
        r = self.stasis("inspect", bad)
        self.assertIn(r.returncode, (92, 93))
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    # --- what run/resume say about a suspension ----------------------------------------------------

    def test_latency_line(self):
        err = self.run_result.stderr
        m = re.search(r"stasis: suspended into (\S+) \(([\d.]+) (B|KiB|MiB)\), (\d+) ms after the request\n", err)
        self.assertIsNotNone(m, err)
        self.assertEqual(m.group(1), self.snap)
        latency = self.inspect_json()["suspension"]["latency_ms"]
        self.assertLessEqual(abs(int(m.group(4)) - latency), 1)
        self.assertNotIn("\r", err)  # not a terminal: no progress line

    def test_progress_never_without_a_terminal(self):
        prog = self.write("quick.py", WORKER_PROGRAM)
        r = self.stasis("run", prog, "--snapshot", "quick.snap",
                        env={**self.env, "STASIS_PROGRESS_DELAY": "0"})
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertNotIn("writing", r.stderr)
        self.assertNotIn("\r", r.stderr)
        r = self.stasis("resume", "quick.snap", env={**self.env, "STASIS_PROGRESS_DELAY": "0"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")

    def run_on_terminal(self, args, delay):
        pid, fd = pty.fork()
        if pid == 0:  # the child: stdout and stderr are the terminal
            try:
                os.chdir(self.dir)
                env = {**self.env}
                if delay is not None:
                    env["STASIS_PROGRESS_DELAY"] = delay
                os.execve(STASIS, [STASIS, *args], env)
            finally:
                os._exit(127)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")

    def test_progress_on_a_terminal(self):
        prog = self.write("tty.py", WORKER_PROGRAM)
        snap = os.path.join(self.dir, "tty.snap")
        status, out = self.run_on_terminal(["run", prog, "--snapshot", snap], "0")
        self.assertEqual(status, 75, out)
        self.assertIn(f"\rstasis: writing {snap}: ", out)
        self.assertIn(" MiB, done\r\n", out)
        self.assertIn(f"stasis: suspended into {snap} (", out)
        status, out = self.run_on_terminal(["resume", snap], "0")
        self.assertEqual(status, 0, out)
        self.assertIn(f"\rstasis: reading {snap}: ", out)
        self.assertIn("100% of ", out)
        self.assertIn(" MiB, done\r\n", out)
        # a short write (well under the default second) shows none
        status, out = self.run_on_terminal(["run", prog, "--snapshot", snap], None)
        self.assertEqual(status, 75, out)
        self.assertNotIn("writing", out)


class CraftedProgramCase(unittest.TestCase):
    """A program payload written by hand (as a stranger could): strings with terminal escapes where
    names, files, sources and values belong, fields of the wrong types. inspect shows what it can,
    every line printable, and builds nothing."""

    def test_crafted_records(self):
        d = tempfile.mkdtemp(prefix="stasis-inspect-crafted-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "crafted.snap")
        evil = os.path.join(d, "\x1b[2Jevil.py")
        script = textwrap.dedent(f"""\
            import json, stasis
            from stasis import _engine
            from stasis.program.layout import PROGRAM_LAYOUT
            code = compile("x = 1\\ny = 2\\n", {evil!r}, "exec")
            frame = {{"code": code, "row": None, "offset": 4, "stack": (),
                      "locals": {{"\\x1b]0;title\\x07": "v\\x1b[2J\\n", "n": 5}}}}
            odd = {{"code": "not code", "row": 7, "offset": "x", "locals": [1], "stack": ()}}
            root = {{"layout": PROGRAM_LAYOUT, "target": "t", "argv": ["\\x1b[2J"], "path": [], "cwd": "/",
                    "roots": [], "rewrite": [], "no_rewrite": [], "handlers": [], "modules": {{"__main__": {{"z": 1}}}},
                    "base_code": code, "threads": [
                        {{"ident": "\\x1b[31m", "name": b"\\x1b[2J", "main": True, "frames": [frame], "thread": None}},
                        {{"ident": 2, "name": "t\\nx", "main": False, "frames": [odd, 5], "thread": "no"}}],
                    "checkpoint": None, "random": None, "library": {{}}, "recursion_limit": 1000, "signals": {{}},
                    "atexit": [], "generation": "many",
                    "suspension": {{"trigger": "\\x1b[31mred", "requested_at": "a", "captured_at": None}},
                    "sources": {{"__main__": {{"path": {evil!r}, "source": b"x = '\\x1b[2J'\\ny = 2\\n", "sha256": ""}}}},
                    "patches": [1, {{"applied_at": 0.0, "by": "\\x1b[2J"}}], "crash": "bad", "pending_writes": []}}
            meta = {{"modules": ["__main__", "\\x1b[2J"], "sys_path": [], "roots": [], "rewrite": [], "no_rewrite": [],
                    "threads": 2, "handler_modules": [], "program": ["script", "\\x1b[2J.py", "\\n"]}}
            _engine.dump(root, {path!r}, kind="program", meta=json.dumps(meta), hash_seed=1)
        """)
        subprocess.run([os.path.join(BUILD, "bin", "python"), "-c", script], check=True)
        r = subprocess.run([STASIS, "inspect", path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\x1b", r.stdout)
        for line in r.stdout.splitlines():
            self.assertTrue(line.isprintable(), repr(line))
        self.assertIn("    x = '\\x1b[2J'\n", r.stdout)        # the recorded source, escaped
        self.assertIn(r"\x1b]0;title\x07 = 'v\x1b[2J\n'", r.stdout)
        self.assertIn("  <module> (" + evil.replace("\x1b", r"\x1b") + ":1)\n", r.stdout)
        r = subprocess.run([STASIS, "inspect", path, "--json"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = json.loads(r.stdout)
        self.assertEqual(data["threads"][0]["frames"][0]["line"], 1)
        self.assertEqual(data["suspension"]["trigger"], "\x1b[31mred")


class InspectScaleCase(unittest.TestCase):
    """A snapshot of 10^6 objects inspects in less time than its resume takes (measured here)."""

    PROGRAM = textwrap.dedent("""\
        import stasis
        class Item:
            def __init__(self, i):
                self.id, self.name, self.price = i, str(i), i + 0.5
        def build(n):
            return [Item(i) for i in range(n)]
        data = build(200_000)  # 200,000 x (instance, its dict, int, str, float): 10^6 objects
        stasis.suspend()
        print(len(data))
    """)

    def test_inspect_faster_than_resume(self):
        d = tempfile.mkdtemp(prefix="stasis-inspect-scale-")
        self.addCleanup(shutil.rmtree, d, True)
        prog = os.path.join(d, "big.py")
        with open(prog, "w") as f:
            f.write(self.PROGRAM)
        env = {**os.environ, "PYTHONHASHSEED": "3"}
        snap = os.path.join(d, "big.snap")
        r = subprocess.run([STASIS, "run", prog], cwd=d, env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 75, r.stderr)
        info = json.loads(subprocess.run([STASIS, "inspect", snap, "--json"], cwd=d, env=env, capture_output=True,
                                         text=True, check=True).stdout)
        self.assertGreaterEqual(info["objects"], 1_000_000)
        inspect_times, resume_times = [], []
        for _ in range(5):
            copy = os.path.join(d, "copy.snap")
            shutil.copyfile(snap, copy)
            t0 = time.perf_counter()
            r = subprocess.run([STASIS, "inspect", copy], cwd=d, env=env, capture_output=True, text=True,
                               timeout=600)
            inspect_times.append(time.perf_counter() - t0)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("  <module> (", r.stdout)
            t0 = time.perf_counter()
            r = subprocess.run([STASIS, "resume", copy], cwd=d, env=env, capture_output=True, text=True,
                               timeout=600)
            resume_times.append(time.perf_counter() - t0)
            self.assertEqual((r.returncode, r.stdout), (0, "200000\n"), r.stderr)
        inspect_t, resume_t = sorted(inspect_times)[2], sorted(resume_times)[2]
        sys.stderr.write(f"\n10^6 objects: inspect {inspect_t:.2f} s, resume {resume_t:.2f} s (medians of 5; "
                         f"ratio {inspect_t / resume_t:.2f})\n")
        self.assertLess(inspect_t, resume_t)


if __name__ == "__main__":
    unittest.main()
