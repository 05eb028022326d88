"""Suspended generators and coroutines: dumped in one process, rebuilt from C (no code runs) and
continued in a fresh one; the output equals the uninterrupted run's."""
import os
import subprocess
import sys
import tempfile
import types
import unittest

import stasis

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args):
    return subprocess.run([sys.executable, os.path.join(HERE, "genprog.py"), *args],
                          capture_output=True, text=True, cwd=HERE, timeout=60)


def numbers():
    x = 10
    yield x
    x += 1
    yield x
    yield x * 2


class GeneratorTest(unittest.TestCase):
    def test_generator_in_fresh_process_matches_uninterrupted_run(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "gens.snap")
            plain = run("plain", path)
            self.assertEqual(plain.returncode, 0, plain.stderr)
            dumped = run("dump", path)
            self.assertEqual(dumped.returncode, 0, dumped.stderr)
            loaded = run("load", path)
            self.assertEqual(loaded.returncode, 0, loaded.stderr)
            self.assertEqual(loaded.stdout, plain.stdout)
            self.assertIn("('outer', 18)", loaded.stdout)

    def test_generator_same_process(self):
        g = numbers()
        self.assertEqual(next(g), 10)
        g2 = stasis.loads(stasis.dumps(g))
        self.assertIsInstance(g2, types.GeneratorType)
        self.assertEqual(list(g2), [11, 22])
        self.assertEqual(list(g), [11, 22])  # the original is untouched

    def test_generator_not_started_and_finished(self):
        fresh = stasis.loads(stasis.dumps(numbers()))
        self.assertEqual(list(fresh), [10, 11, 22])
        done = numbers()
        list(done)
        self.assertEqual(list(stasis.loads(stasis.dumps(done))), [])

    def test_generator_identity_with_its_locals(self):
        def selfref():
            me = yield
            yield me
        g = selfref()
        next(g)
        holder = [g]
        h = stasis.loads(stasis.dumps(holder))
        self.assertIs(h[0].send(h), h)

    def test_coroutine_rebuilt(self):
        async def co():
            import asyncio  # noqa: F401  (a local that is a module)
            return 7
        c = co()
        c2 = stasis.loads(stasis.dumps(c))
        c.close()
        with self.assertRaises(StopIteration) as e:
            c2.send(None)
        self.assertEqual(e.exception.value, 7)

    def test_async_generator_rebuilt(self):
        async def agen():
            total = 0
            for i in range(4):
                total += i
                yield total

        def step(ag):
            try:
                ag.asend(None).send(None)
            except StopIteration as e:
                return e.value
        a = agen()
        self.assertEqual(step(a), 0)
        self.assertEqual(step(a), 1)
        b = stasis.loads(stasis.dumps(a))
        self.assertEqual([step(b), step(b)], [3, 6])
        self.assertEqual([step(a), step(a)], [3, 6])

    def test_running_generator_is_unsupported(self):
        def gen():
            yield stasis.dumps(g)
        g = gen()
        with self.assertRaises(stasis.UnsupportedObjectError) as e:
            next(g)
        self.assertIn("running", str(e.exception))


if __name__ == "__main__":
    unittest.main()
