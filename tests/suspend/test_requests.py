"""A suspension request is never lost: it survives the program's own trace functions, an object
that cannot be captured at one safe point, and when it really cannot be honoured the exit status
says so; a resumed program holds what its frames hold and nothing more (issue 17)."""
import os
import re
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

# The request is made inside an exception handler (never a safe point), so the parking trace is on
# the thread while the program saves, replaces and restores its own trace function.
TRACE_WHILE_PENDING = textwrap.dedent("""
    import sys, time
    try:
        import stasis
    except ImportError:
        stasis = None
    seen = []
    def mine(frame, event, arg):
        seen.append(event)
        return mine
    def traced(n):
        return sum(range(n))
    def f():
        try:
            raise ValueError("x")
        except ValueError:
            if stasis:
                stasis.suspend()
            old = sys.gettrace()
            print("before:", old)
            sys.settrace(mine)
            print("mine:", sys.gettrace() is mine)
            traced(3)
            sys.settrace(old)
            print("restored:", sys.gettrace() is old)
        print("events seen by the program's tracer:", sorted(set(seen)))
    f()
    for i in range(50):
        time.sleep(0.002)
    print("end", sys.gettrace())
""")

# A struct unpack iterator lives in a local for most of each step: most safe points cannot be captured.
TRANSIENT = textwrap.dedent("""
    import struct, sys, time
    def step(i):
        m = struct.iter_unpack("i", i.to_bytes(4, sys.byteorder, signed=True))
        time.sleep(0.02)
        v = next(m)[0]
        del m
        time.sleep(0.001)
        return v
    total = 0
    for i in range(int(sys.argv[1])):
        total += step(i)
        print(i, total)
""")

PERSISTENT = textwrap.dedent("""
    import struct, time
    keep = struct.iter_unpack("1s", b"a")
    for i in range(60):
        time.sleep(0.01)
    print("done", next(keep)[0].decode())
""")

# 200 objects in reference cycles, held by a suspended frame and dropped after resume: the
# collector must find them (the replay's frame records must not keep them alive).
CYCLES = textwrap.dedent("""
    import gc, sys, time
    class Node:
        def __init__(self):
            self.me = self
    def main():
        nodes = [Node() for _ in range(200)]
        for i in range(30):
            time.sleep(0.01)
        del nodes
        gc.collect()
        print("alive", sum(type(o) is Node for o in gc.get_objects()))
    gc.disable()
    main()
""")


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-requests-")
        self.env = {**os.environ, "PYTHONHASHSEED": "5"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def stasis(self, *args, timeout=120):
        return subprocess.run([STASIS, *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def plain(self, *args):
        return subprocess.run([PLAIN, *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=120).stdout

    def chain(self, first, snap):
        out = first.stdout
        r = first
        for _ in range(50):
            if r.returncode != 75:
                break
            r = self.stasis("resume", snap)
            out += r.stdout
        self.assertEqual(r.returncode, 0, r.stderr)
        return out



class Requests(Case):
    def test_the_program_sees_its_own_trace_function_while_a_request_is_pending(self):
        prog = self.write("trace.py", TRACE_WHILE_PENDING)
        r = self.stasis("run", "--snapshot", "trace.snap", prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("before: None\nmine: True\nrestored: True\n", r.stdout)
        out = self.chain(r, "trace.snap")
        self.assertIn("'call'", out)  # the program's tracer got its events
        self.assertEqual(out, self.plain(prog))

    def test_an_object_that_blocks_one_safe_point_is_retried_at_later_ones(self):
        prog = self.write("transient.py", TRANSIENT)
        r = self.stasis("run", "--quota", "0.15", "--snapshot", "t.snap", prog, "40")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertNotIn("could not suspend", r.stderr)
        self.assertEqual(self.chain(r, "t.snap"), self.plain(prog, "40"))

    def test_a_request_never_honoured_ends_with_its_own_status(self):
        prog = self.write("persistent.py", PERSISTENT)
        r = self.stasis("run", "--quota", "0.1", "--safe-point-timeout", "0.3", "--snapshot", "p.snap", prog)
        self.assertEqual(r.returncode, 104, r.stderr)
        self.assertEqual(r.stdout, "done a\n")  # the program went on and finished
        self.assertIn("could not suspend within 0.3 s", r.stderr)
        self.assertIn("unpack_iterator is not supported", r.stderr)
        self.assertIn("the program ended (status 0) without being suspended", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "p.snap")))

    def test_a_request_honoured_later_is_not_reported_as_missed(self):
        prog = self.write("transient.py", TRANSIENT)
        r = self.stasis("run", "--quota", "0.1", "--snapshot", "t.snap", prog, "20")
        self.assertEqual(r.returncode, 75, r.stderr)
        r = self.stasis("resume", "t.snap")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_objects_of_a_rebuilt_frame_are_freed_with_it(self):
        prog = self.write("cycles.py", CYCLES)
        r = self.stasis("run", "--quota", "0.1", "--snapshot", "c.snap", prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        r = self.stasis("resume", "c.snap")
        self.assertEqual((r.returncode, r.stdout), (0, "alive 0\n"), r.stderr)


# stasis.suspend() in a coroutine whose loop only awaits asyncio.sleep(0): the whole rest of the
# program takes about a millisecond, less than the coordinator needs to start.
SUSPEND_IN_COROUTINE = textwrap.dedent("""
    import asyncio
    try:
        import stasis
    except ImportError:
        stasis = None
    async def main():
        for i in range(3):
            print(i)
            if i == 1 and stasis:
                stasis.suspend()
            await asyncio.sleep(0)
    asyncio.run(main())
""")

# The request comes inside an exception handler at the very end: no safe point ever follows.
ENDS_PENDING = textwrap.dedent("""
    import stasis
    try:
        raise ValueError("x")
    except ValueError:
        stasis.suspend()
        print("end")
""")


class NeverLost(Case):
    def test_suspend_in_a_coroutine_right_before_the_end(self):
        prog = self.write("coro.py", SUSPEND_IN_COROUTINE)
        for _ in range(3):
            r = self.stasis("run", "--snapshot", "c.snap", prog)
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertEqual(self.chain(r, "c.snap"), self.plain(prog))

    def test_a_program_that_ends_before_any_safe_point_exits_with_the_missed_status(self):
        prog = self.write("ends.py", ENDS_PENDING)
        r = self.stasis("run", "--snapshot", "e.snap", prog)
        self.assertEqual((r.returncode, r.stdout), (104, "end\n"), r.stderr)
        self.assertIn("without being suspended as requested (it ended before reaching a safe point)", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "e.snap")))

    def test_the_quota_counts_from_the_start_even_if_a_c_call_holds_the_gil_first(self):
        # compile() of a big source holds the GIL for longer than the quota (a second or more here);
        # the timer thread first runs after it, and used to start its 0.5 s only then: the program
        # ended first, and the quota was never enforced (exit 0, no message).
        prog = self.write("cfirst.py", textwrap.dedent("""
            import time
            t0 = time.monotonic()
            code = compile("x = [1, 2, (3, 4), {5: 6}]\\n" * 30000, "big", "exec")
            slow = time.monotonic() - t0 > 0.5
            for i in range(10):
                time.sleep(0.01)
            print("compiled in", "more" if slow else "less", "than the quota")
        """))
        r = self.stasis("run", "--quota", "0.5", "--snapshot", "q.snap", prog)
        if r.returncode == 0 and "less" in r.stdout:
            self.skipTest("compile() took less than the quota on this machine")
        self.assertEqual(r.returncode, 75, r.stderr)
        # The timing line depends on the load of the moment: the plain run's may differ.
        self.assertRegex(self.chain(r, "q.snap"), r"\Acompiled in (more|less) than the quota\n\Z")


class Paths(Case):
    def test_relative_snapshot_paths_are_the_resuming_process_s(self):
        work = os.path.join(self.dir, "work")
        os.makedirs(os.path.join(work, "elsewhere"))
        prog = self.write("walker.py", textwrap.dedent("""
            import os, time
            os.chdir("elsewhere")  # the program's working directory is not where stasis runs
            for i in range(40):
                time.sleep(0.01)
            print("done", os.path.basename(os.getcwd()))
        """))
        r = subprocess.run([STASIS, "run", "--quota", "0.1", "--snapshot", "first.snap", prog], cwd=work,
                           env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(work, "first.snap")))
        # Resumed from another directory, with a path relative to it: the next snapshot replaces
        # that file (not one relative to the program's own directory).
        first = os.path.join(work, "first.snap")
        before = os.stat(first).st_mtime_ns
        r = subprocess.run([STASIS, "resume", "--quota", "0.1", os.path.join("work", "first.snap")], cwd=self.dir,
                           env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(f"suspended into {first}", r.stderr)
        self.assertNotEqual(os.stat(first).st_mtime_ns, before)
        r = subprocess.run([STASIS, "resume", os.path.join("work", "first.snap")], cwd=self.dir, env=self.env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual((r.returncode, r.stdout), (0, "done elsewhere\n"), r.stderr)

ASYNC_STEPS = textwrap.dedent("""
    import asyncio
    async def worker(name, n, out):
        total = 0
        for i in range(n):
            total += i
            await asyncio.sleep(0)
        out.append((name, total))
    async def main():
        out = []
        await asyncio.gather(*(worker(f"w{j}", 30, out) for j in range(3)))
        print(sorted(out), len(asyncio.all_tasks()))
    asyncio.run(main())
""")

SLEEPERS = textwrap.dedent("""
    import asyncio, sys
    async def sleeper(i):
        await asyncio.sleep(3600)
        return i
    async def main(n):
        tasks = [asyncio.create_task(sleeper(i)) for i in range(n)]
        await asyncio.sleep(0.3)
        for t in tasks:
            t.cancel()
        print("tasks", len(tasks), len(asyncio.all_tasks()))
    asyncio.run(main(int(sys.argv[1])))
""")


class Asyncio(Case):
    def test_suspended_anywhere_inside_task_step(self):
        # --suspend-after k for k in a range: some of these safe points are lines of Task.__step
        # after its _enter_task(), whose _leave_task() then runs in the resumed process.
        prog = self.write("steps.py", ASYNC_STEPS)
        expected = self.plain(prog)
        for k in range(160, 340, 9):
            with self.subTest(k=k):
                r = self.stasis("run", "--suspend-after", str(k), "--snapshot", "s.snap", prog)
                if r.returncode != 75:
                    self.assertEqual(r.stdout, expected, r.stderr)
                    continue
                out = r.stdout
                r = self.stasis("resume", "s.snap")
                self.assertEqual((r.returncode, out + r.stdout), (0, expected), r.stderr)
                self.assertNotIn("Traceback", r.stderr)

    def objects(self, n):
        prog = self.write("sleepers.py", SLEEPERS)
        r = self.stasis("run", "--quota", "0.15", "--snapshot", "z.snap", prog, str(n))
        self.assertEqual(r.returncode, 75, r.stderr)
        info = self.stasis("inspect", "--json", "z.snap")
        r = self.stasis("resume", "z.snap")
        self.assertEqual((r.returncode, r.stdout), (0, self.plain(prog, str(n))), r.stderr)
        import json
        return json.loads(info.stdout)["objects"]

    def test_snapshot_size_is_linear_in_the_number_of_tasks(self):
        small, large = self.objects(200), self.objects(1600)
        self.assertLess(large / small, 8 * 1.25, (small, large))  # quadratic: ~64x


KEEP_ALIVE_SERVER = textwrap.dedent("""
    import http.server, socket, threading, time
    import stasis
    class Hello(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = socket.create_connection(server.server_address)
    client.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    print(client.recv(1000).split(b"\\r\\n")[0].decode(), flush=True)
    time.sleep(0.1)  # the handler's thread waits for the next request in rfile.readline()
    stasis.suspend()
    for i in range(50):
        time.sleep(0.01)
    print("end")
""")


class BlockedInLibraryCode(Case):
    def test_a_handler_thread_waiting_in_readline_has_a_capturable_stack(self):
        # BaseHTTPRequestHandler.handle_one_request -> rfile.readline() (C, io.BufferedReader) ->
        # SocketIO.readinto -> recv_into: its stack is taken at that call, readinto's argument (a
        # memoryview of the reader's own buffer) recorded as the type; resume calls readline again,
        # which lends readinto a buffer of the restored reader.
        prog = self.write("server.py", KEEP_ALIVE_SERVER)
        r = self.stasis("run", "--safe-point-timeout", "5", "--snapshot", "k.snap", prog)
        self.assertEqual((r.returncode, r.stdout), (75, "HTTP/1.1 200 OK\n"), r.stderr)
        r = self.stasis("resume", "k.snap")
        self.assertEqual((r.returncode, r.stdout), (0, "end\n"), r.stderr)
        self.assertNotIn("Traceback", r.stderr)


# A package outside the program's directory (so not one of its own modules, which travel in the
# snapshot), imported the way unittest's loader imports a test module: __import__ gives back the
# top-level package, the submodule is then an attribute of it. The program suspends before the
# import, inside the submodule's body (honoured once the import returns), right after it, and
# after the attribute is read; the heap refers to the package only.
IMPORTED_SUB = textwrap.dedent("""
    try:
        import stasis
    except ImportError:
        stasis = None
    if stasis and getattr(stasis, "_suspend_in_body", False):
        stasis.suspend()
    VALUE = sum(range(10))
    def f(x):
        return x * VALUE
""")

IMPORTS_SUB = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lib"))
    try:
        import stasis
    except ImportError:
        stasis = None
    def pause(where):
        print("at", where, flush=True)
        if stasis:
            stasis.suspend()
    def load(name):
        pause("before the import")
        if stasis:
            stasis._suspend_in_body = True
        package = __import__(name)
        if stasis:
            stasis._suspend_in_body = False
        pause("after the import")
        sub = getattr(package, name.rpartition(".")[2])
        pause("after getattr")
        return sub
    sub = load("pkgx.sub")
    print(sub.f(3), sorted(k for k in vars(sys.modules["pkgx"]) if not k.startswith("__")))
    import email.mime.text  # a standard-library package, only `email` bound
    pause("after a standard-library import")
    print(email.mime.text.MIMEText("x").get_content_type())
""")


class Imports(Case):
    def test_a_submodule_imported_before_the_suspension_is_an_attribute_of_its_package_on_resume(self):
        os.makedirs(os.path.join(self.dir, "lib", "pkgx"))
        os.makedirs(os.path.join(self.dir, "prog"))
        self.write(os.path.join("lib", "pkgx", "__init__.py"), "X = 1\n")
        self.write(os.path.join("lib", "pkgx", "sub.py"), IMPORTED_SUB)
        prog = self.write(os.path.join("prog", "main.py"), IMPORTS_SUB)
        plain = self.plain(prog)
        self.assertIn("135 ['X', 'sub']\n", plain)
        self.assertTrue(plain.endswith("text/plain\n"), plain)
        r = self.stasis("run", "--snapshot", "i.snap", prog)
        out, steps = r.stdout, 1
        while r.returncode == 75 and steps < 20:
            r = self.stasis("resume", "i.snap")
            out += r.stdout
            steps += 1
        self.assertEqual((r.returncode, out), (0, plain), r.stderr)
        self.assertEqual(steps, 6)  # five suspensions

    def test_a_module_that_cannot_be_imported_again_is_named_and_the_program_goes_on(self):
        # lib/ is not under the script's directory: its modules are not the program's own.
        os.makedirs(os.path.join(self.dir, "lib", "gone"))
        os.makedirs(os.path.join(self.dir, "prog"))
        self.write(os.path.join("lib", "gone", "__init__.py"), "")
        self.write(os.path.join("lib", "gone", "away.py"), "VALUE = 7\n")
        prog = self.write(os.path.join("prog", "main.py"), textwrap.dedent("""
            import sys
            sys.path.insert(0, "lib")
            import gone.away
            print(gone.away.VALUE, flush=True)
            import stasis
            stasis.suspend()
            print("resumed", "gone.away" in sys.modules)
        """))
        r = self.stasis("run", "--snapshot", "g.snap", prog)
        self.assertEqual((r.returncode, r.stdout), (75, "7\n"), r.stderr)
        os.remove(os.path.join(self.dir, "lib", "gone", "away.py"))
        r = self.stasis("resume", "g.snap")
        self.assertEqual((r.returncode, r.stdout), (0, "resumed False\n"), r.stderr)
        self.assertIn("stasis: warning: module gone.away, which the program had imported, cannot be imported "
                      "again (ModuleNotFoundError", r.stderr)


def big_python_source(functions):
    return "".join(f"def f{i}(a, b=({i}, 'x{i}'), *args, **kw):\n    \"\"\"doc {i}\"\"\"\n"
                   f"    return [a + b[0] * {i} for _ in range(3) if a != {i}]  # c{i}\n"
                   for i in range(functions))


class LibraryModulesAsMain(Case):
    """`stasis run -m tokenize FILE` / `-m ast FILE`: Stasis itself imported tokenize and ast before
    the program starts (plain code in sys.modules); __main__ runs a fresh rewritten copy."""

    def chain(self, module, path):
        plain = subprocess.run([PLAIN, "-m", module, path], cwd=self.dir, env=self.env, capture_output=True,
                               timeout=300)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        snap = module + ".snap"
        r = subprocess.run([STASIS, "run", "--quota", "0.3", "--snapshot", snap, "-m", module, path], cwd=self.dir,
                           env=self.env, capture_output=True, timeout=300)
        out, err, steps = r.stdout, r.stderr, 1
        while r.returncode == 75 and steps < 100:
            r = subprocess.run([STASIS, "resume", "--quota", "0.3", snap], cwd=self.dir, env=self.env,
                               capture_output=True, timeout=300)
            out, err, steps = out + r.stdout, err + r.stderr, steps + 1
        self.assertEqual(r.returncode, 0, err.decode()[-3000:])
        self.assertGreater(steps, 1, "never suspended: " + err.decode()[-3000:])
        self.assertTrue(out == plain.stdout, f"output differs after {steps} steps")  # megabytes: no diff

    def test_tokenize_under_a_quota_chain(self):
        self.chain("tokenize", self.write("big.py", big_python_source(3000)))

    def test_ast_under_a_quota_chain(self):
        # ast's main parses in one C call, then dumps in Python: 3000 lines (0.5 s plainly) could
        # end within a quiet machine's first 0.3 s step plus start-up, never suspended.
        self.chain("ast", self.write("big.py", big_python_source(9000)))

    def test_a_stack_through_a_module_stasis_imported_first_says_rewrite_cannot_help(self):
        # ast is imported by Stasis before the program: NodeVisitor.visit is plain code, and the
        # program's visit_Name under it has no safe point. --rewrite ast changes nothing.
        prog = self.write("visit.py", textwrap.dedent("""
            import ast, time
            class Slow(ast.NodeVisitor):
                def visit_Name(self, node):
                    time.sleep(0.05)
                    print(node.id)
            Slow().visit(ast.parse("a + b + c + d + e + f + g + h + i + j"))
        """))
        r = self.stasis("run", "--rewrite", "ast", "--quota", "0.2", "--safe-point-timeout", "0.2",
                        "--snapshot", "v.snap", prog)
        self.assertEqual((r.returncode, r.stdout), (104, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"), r.stderr)
        self.assertIn("NodeVisitor.visit", r.stderr)
        self.assertIn("runs code that was not rewritten (module ast was imported by Stasis itself before the "
                      "program started, so its code is not rewritten and has no safe points; --rewrite cannot "
                      "change that)", r.stderr)
        self.assertNotIn("--rewrite adds it", r.stderr)


class CPythonTests(Case):
    def test_a_cpython_test_module_under_a_short_quota_chain(self):
        # `python -m unittest test.test_set` (about 1.6 s plainly; test_heapq, 0.2 s, could end
        # before a 0.3 s quota): unittest's frames are rewritten library code and test methods are
        # called through TestSuite/TestCase.__call__, so a 0.3 s quota suspends it several times;
        # every step resumes, and the result is the same. With an empty cache of rewritten code,
        # the first step spends its quota rewriting, so it is often suspended in the loader right
        # after `__import__("test.test_set")` returned, before `getattr(test, "test_set")` (the
        # heap then refers to package `test` only: Imports above).
        self.env["STASIS_CACHE_DIR"] = os.path.join(self.dir, "cache")
        plain = subprocess.run([PLAIN, "-m", "unittest", "test.test_set"], cwd=self.dir, env=self.env,
                               capture_output=True, text=True, timeout=300)
        r = self.stasis("run", "--quota", "0.3", "--snapshot", "ut.snap", "-m", "unittest", "test.test_set",
                        timeout=300)
        err, steps = r.stderr, 1
        while r.returncode == 75 and steps < 100:
            r = self.stasis("resume", "--quota", "0.3", "ut.snap", timeout=300)
            err += r.stderr
            steps += 1
        self.assertEqual(r.returncode, plain.returncode, err[-3000:])
        self.assertGreater(steps, 1, "never suspended")

        def summary(text):
            # Stasis's own line may land inside one of the program's ("OK" | suspended | " (skipped=2)").
            text = re.sub(r"stasis: suspended into [^\n]*\n", "", text)
            return [line.split(" in ")[0] for line in text.splitlines() if line.startswith(("Ran ", "OK", "FAILED"))]
        self.assertEqual(summary(err), summary(plain.stderr))
        self.assertNotIn("Traceback", err)


if __name__ == "__main__":
    unittest.main()
