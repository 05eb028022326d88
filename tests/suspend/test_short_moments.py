"""Requests honoured where safe points only come in short moments between long stretches of code
that C calls (issue 17): a key function of sorted(), a function map() applies, a generator that
sum() iterates, a coroutine driven by send(), in the main thread and in other threads. While the
request waits there the thread is watched, not traced (snapshot/safe_point.h): the program runs
on untraced, its frames stay linked as without Stasis (sys._getframe(), zero-argument super()),
and the request ends in a snapshot at the first safe point after the stretch; the resumed
program's output is the uninterrupted run's."""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = os.path.realpath(sys.executable)  # the configured interpreter (the build's bin/python links to it)

# Shared by the programs: note() records, while a request is pending, how Stasis lets the calling
# thread wait ("watched", "traced" or "sampled"); the program prints the last notes on stderr when
# it ends (in the resumed process: the list travels in the snapshot). Plain python3 has no Stasis.
COMMON = textwrap.dedent("""
    import sys, threading
    try:
        from stasis import _engine
    except ImportError:
        _engine = None
    notes = []

    def note():
        if _engine is not None:
            st = _engine.park_states().get(threading.get_ident())
            if st is not None and not st[0]:
                notes.append("traced" if st[4] else "watched" if st[5:] and st[5] else "sampled")

    def work(n):
        s = 0
        for i in range(n):
            s += i % 7
        return s

    class Base:
        def value(self, x):
            return x

    class Doubled(Base):
        def value(self, x):
            return super().value(x) * 2   # zero-argument super(): needs the right frame chain

    def callback(x):
        # Called from C; its caller is the frame that called the C function.
        caller = sys._getframe(1).f_code.co_name
        assert caller == "stretch", caller
        try:
            raise KeyError(x)   # exceptions raised and caught inside the stretch
        except KeyError:
            pass
        note()
        return Doubled().value(x) + work(WORK) % 3

    def report():
        if notes:
            sys.stderr.write("waiting: " + " ".join(notes[-5:]) + "\\n")
""")

STRETCHES = {
    "sorted": """
        def stretch(n):
            return sorted(range(n), key=callback)[:3]
    """,
    "map_loop": """
        def stretch(n):
            total = 0
            for v in map(callback, range(n)):   # the loop body calls nothing: 'line' events
                total += v
            return total
    """,
    "generator": """
        def items(n):
            for i in range(n):
                assert sys._getframe(1).f_code.co_name == "stretch"
                note()
                yield work(WORK) + i

        def stretch(n):
            return sum(items(n))
    """,
    "coroutine": """
        calls = [0]

        async def fib(n):
            calls[0] += 1
            if calls[0] % 500 == 0:
                note()
            if n <= 1:
                return n
            return await fib(n - 1) + await fib(n - 2)

        def stretch(n):
            coro = fib(n)
            try:
                while True:
                    coro.send(None)
            except StopIteration as e:
                return e.value
    """,
}

# How big each stretch is (about 0.2-0.3 s of plain run on an idle machine), and what WORK is.
SIZES = {"sorted": (2000, 3000), "map_loop": (2000, 3000), "generator": (2000, 3000), "coroutine": (28, 0)}

MAIN = textwrap.dedent("""
    for r in range(4):
        print(r, stretch(N), flush=True)
    report()
""")

THREADS = textwrap.dedent("""
    results = {}

    def worker(name):
        out = []
        for r in range(3):
            out.append(stretch(N))
        results[name] = out

    threads = [threading.Thread(target=worker, args=(f"w{i}",), name=f"w{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sorted(results.items()))
    report()
""")


class Case(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-moments-")
        self.env = {**os.environ, "PYTHONHASHSEED": "7"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def program(self, kind, driver):
        n, work = SIZES[kind]
        text = (f"N = {n}\nWORK = {work}\n" + COMMON + textwrap.dedent(STRETCHES[kind]) + driver)
        path = os.path.join(self.dir, f"{kind}.py")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_chain(self, prog, quota):
        """Runs `prog` under a quota (the request lands inside the first stretch) and resumes it to
        the end; returns (stdout of all steps, stderr of all steps, steps)."""
        snap = os.path.join(self.dir, "m.snap")
        r = subprocess.run([STASIS, "run", "--quota", str(quota), "--snapshot", snap, prog], cwd=self.dir,
                           env=self.env, capture_output=True, text=True, timeout=300)
        out, err, steps = r.stdout, r.stderr, 1
        self.assertEqual(r.returncode, 75, r.stderr)
        while r.returncode == 75 and steps < 10:
            r = subprocess.run([STASIS, "resume", snap], cwd=self.dir, env=self.env, capture_output=True,
                               text=True, timeout=300)
            out, err, steps = out + r.stdout, err + r.stderr, steps + 1
        self.assertEqual(r.returncode, 0, err)
        return out, err


class ShortMoments(Case):
    def check(self, kind, driver):
        prog = self.program(kind, driver)
        plain = subprocess.run([PLAIN, prog], cwd=self.dir, env=self.env, capture_output=True, text=True,
                               timeout=300)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        out, err = self.run_chain(prog, 0.08)
        self.assertEqual(out, plain.stdout)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("could not suspend", err)
        # While the request waited inside the stretch the thread ran untraced, watched.
        waiting = [line for line in err.splitlines() if line.startswith("waiting: ")]
        if not waiting and kind == "map_loop" and " 0 ms after the request" in err:
            return  # the request came while the loop body ran: a safe point at once, nothing waited
        self.assertEqual(len(waiting), 1, err)
        self.assertEqual(waiting[0].split()[-1], "watched", err)
        self.assertNotIn("traced", waiting[0], err)

    def test_callbacks_of_sorted(self):
        self.check("sorted", MAIN)

    def test_map_in_a_loop_whose_body_calls_nothing(self):
        self.check("map_loop", MAIN)

    def test_generator_iterated_by_sum(self):
        self.check("generator", MAIN)

    def test_coroutine_driven_by_send(self):
        self.check("coroutine", MAIN)

    def test_threads_in_such_stretches(self):
        for kind in ("sorted", "coroutine"):
            with self.subTest(kind=kind):
                self.check(kind, THREADS)


PROFILE = textwrap.dedent("""
    import sys, time
    events = []

    def prof(frame, event, arg):
        if event == "call":
            events.append(frame.f_code.co_name)

    def leaf():
        return 1

    def key(x):
        if x == 1000:
            # A request is pending by now under Stasis (the quota is shorter than this stretch):
            # the program sees no profile function but its own, and its own gets the events.
            print("before:", sys.getprofile())
            sys.setprofile(prof)
            leaf()
            sys.setprofile(None)
            print("after:", sys.getprofile(), "leaf" in events)
        s = 0
        for i in range(3000):
            s += i % 7
        return s + x

    def stretch():
        return sorted(range(2000), key=key)[:3]

    print(stretch())
    print(stretch())
""")


class ProgramProfile(Case):
    def test_the_program_sees_and_sets_its_own_profile_function_while_watched(self):
        prog = os.path.join(self.dir, "profile.py")
        with open(prog, "w") as f:
            f.write(PROFILE)
        plain = subprocess.run([PLAIN, prog], cwd=self.dir, env=self.env, capture_output=True, text=True,
                               timeout=300)
        self.assertIn("before: None\n", plain.stdout)
        out, err = self.run_chain(prog, 0.03)
        self.assertEqual(out, plain.stdout)
        self.assertNotIn("Traceback", err)


if __name__ == "__main__":
    unittest.main()
