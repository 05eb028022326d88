"""`stasis patch` and `stasis resume --patch`: a suspended program is patched (its source edited in
place, or an update module) and resumed in a fresh process; the output of the two runs together
must equal a plain run of the program that does what the patch means (old code before the
suspension, new code after). Also: what is refused (exit 102, the snapshot untouched)."""
from __future__ import annotations

import os
import unittest

from tests.patch.support import PatchTestCase

NOT_ON_STACK = """
import stasis

def fmt(i):
    return f"item {i}"

def main():
    for i in range(6):
        print(fmt(i))
        if i == 2:
            stasis.suspend()

main()
"""

NOT_ON_STACK_EXPECTED = """
def fmt_old(i):
    return f"item {i}"

def fmt_new(i):
    return f"<{i * i}>"

for i in range(6):
    print(fmt_old(i) if i <= 2 else fmt_new(i))
"""

ON_STACK = """
import stasis

def step(x):
    if x == 2:
        stasis.suspend()
    return x * 10

def process(items):
    out = []
    for x in items:
        r = step(x)
        out.append(r)
        print("done", x, r)
    return out

print(process([0, 1, 2, 3, 4]))
"""

# Lines inserted before the loop, before and after the statement suspended in step(x), and after
# the loop; the statement itself is the same.
ON_STACK_V2 = """
import stasis

def step(x):
    if x == 2:
        stasis.suspend()
    return x * 10

def process(items):
    out = []
    print("starting")
    total = 0
    for x in items:
        print("before", x)
        r = step(x)
        total += r
        out.append(r)
        print("done", x, r, "total", total)
    print("finished")
    return out

print(process([0, 1, 2, 3, 4]))
"""

ON_STACK_EXPECTED = """
out = []
for x in [0, 1]:
    r = x * 10
    out.append(r)
    print("done", x, r)
total = sum(out)   # the new local `total`: given by the update module's map_frame init
for x in [2, 3, 4]:
    if x > 2:
        print("before", x)
    r = x * 10
    total += r
    out.append(r)
    print("done", x, r, "total", total)
print("finished")
print(out)
"""

ON_STACK_INIT = """
import stasis.update
# `total` is new in process(): the suspended frame gets the sum of what it has done so far.
stasis.update.map_frame("__main__.process", init={"total": lambda f: sum(f["out"])})
"""

CLASSES = """
import stasis

class Account:
    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance

    def describe(self):
        return f"{self.owner}: {self.balance}"

accounts = [Account("ann", 10), Account("bob", 20), Account("cy", 30)]

def report(rounds):
    for n in range(rounds):
        for a in accounts:
            a.balance += 1
            print(n, a.describe())
        if n == 1:
            stasis.suspend()

report(4)
"""

CLASSES_V2 = CLASSES.replace('''        self.balance = balance
''', '''        self.balance = balance
        self.currency = "EUR"
''').replace('''return f"{self.owner}: {self.balance}"''',
             '''return f"{self.owner}: {self.balance} {self.currency} ({self.tier()})"

    def tier(self):
        return "gold" if self.balance > 25 else "basic"''')

CLASSES_UPDATE = """
import stasis.update
stasis.update.add_field("__main__.Account.currency", lambda a: "USD" if a.owner == "bob" else "EUR")
"""

CLASSES_EXPECTED = """
accounts = [["ann", 10, "EUR"], ["bob", 20, "USD"], ["cy", 30, "EUR"]]
for n in range(4):
    for a in accounts:
        a[1] += 1
        if n <= 1:
            print(n, f"{a[0]}: {a[1]}")
        else:
            print(n, f"{a[0]}: {a[1]} {a[2]} ({'gold' if a[1] > 25 else 'basic'})")
"""

GENERATOR = """
import stasis

def squares(n):
    for i in range(n):
        yield i * i

def main():
    for v in squares(5):
        print("first", v)
        if v == 4:
            stasis.suspend()
    for v in squares(3):
        print("second", v)

main()
"""

# Decision: a generator suspended mid-way finishes on the code it started with; generators made
# after the patch run the new code.
GENERATOR_EXPECTED = """
for i in range(5):
    print("first", i * i)
for i in range(3):
    print("second", -i)
"""

DELETED = """
import stasis

def helper(x):
    if x == 1:
        stasis.suspend()
    return x + 1

def main():
    for x in range(3):
        print(helper(x))

main()
"""

THREADED = """
import threading
import stasis

results = []

def compute(x):
    return x * 2

def worker():
    for x in range(6):
        results.append(compute(x))
        print("worker", x, results[-1], flush=True)
        if x == 2:
            stasis.suspend()

t = threading.Thread(target=worker, name="worker")
t.start()
t.join()
print("results", results)
"""

THREADED_EXPECTED = """
results = []
for x in range(6):
    results.append(x * 2 if x <= 2 else x * 2 + 1000)
    print("worker", x, results[-1])
print("results", results)
"""


class PatchScenarios(PatchTestCase):
    def test_function_not_on_the_stack(self):
        self.write("job.py", NOT_ON_STACK)
        first = self.suspended("job.py")
        self.write("job.py", NOT_ON_STACK.replace('return f"item {i}"', 'return f"<{i * i}>"'))
        r = self.stasis("patch", "job.snap", "--source", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("redefine __main__.fmt", r.out)
        self.assertTrue(os.path.exists(self.path("job.snap.before-patch-1")))
        second = self.stasis("resume", "job.snap")
        self.assertEqual(second.rc, 0, second)
        self.write("expected.py", NOT_ON_STACK_EXPECTED)
        self.assertEqual(first.out + second.out, self.plain("expected.py"))

    def test_function_on_the_stack_with_lines_inserted_before_and_after(self):
        self.write("job.py", ON_STACK)
        first = self.suspended("job.py")
        self.write("job.py", ON_STACK_V2)
        self.write("init.py", ON_STACK_INIT)
        second = self.stasis("resume", "job.snap", "--patch", "job.py", "--patch", "init.py")
        self.assertEqual(second.rc, 0, second)
        self.write("expected.py", ON_STACK_EXPECTED)
        self.assertEqual(first.out + second.out, self.plain("expected.py"))

    def test_method_of_a_class_with_live_instances_and_a_field_added(self):
        self.write("job.py", CLASSES)
        first = self.suspended("job.py")
        self.write("job.py", CLASSES_V2)
        self.write("fields.py", CLASSES_UPDATE)
        # Both forms of patch in one command, applied in order.
        r = self.stasis("patch", "job.snap", "--source", "job.py", "--update", "fields.py", "-o", "patched.snap")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("add __main__.Account.tier", r.out)
        self.assertIn("add_field __main__.Account.currency", r.out)
        second = self.stasis("resume", "patched.snap")
        self.assertEqual(second.rc, 0, second)
        self.write("expected.py", CLASSES_EXPECTED)
        self.assertEqual(first.out + second.out, self.plain("expected.py"))
        # -o leaves the original as it was: it still resumes into the old code.
        old = self.stasis("resume", "job.snap")
        self.assertEqual(old.rc, 0, old)
        self.assertIn("3 cy: 34\n", old.out)

    def test_generator_suspended_mid_way_keeps_its_old_code(self):
        self.write("job.py", GENERATOR)
        first = self.suspended("job.py")
        self.write("job.py", GENERATOR.replace("yield i * i", "yield -i"))
        r = self.stasis("patch", "job.snap", "--source", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("suspended generator of __main__.squares keeps its old code", r.out)
        second = self.stasis("resume", "job.snap")
        self.assertEqual(second.rc, 0, second)
        self.write("expected.py", GENERATOR_EXPECTED)
        self.assertEqual(first.out + second.out, self.plain("expected.py"))

    def test_deleted_function_on_the_stack_is_refused_and_nothing_is_written(self):
        self.write("job.py", DELETED)
        self.suspended("job.py")
        before, files = self.read("job.snap"), self.listing()
        self.write("job.py", DELETED.replace("def helper(x):", "def helper2(x):").replace(
            "print(helper(x))", "print(helper2(x))"))
        r = self.stasis("patch", "job.snap", "--source", "job.py")
        self.assertEqual(r.rc, 102, r)
        self.assertIn("helper (old line 6): its function was deleted from the source and is on the stack", r.err)
        self.assertIn("main (old line 10): the call it is inside (helper(...)) is not in its statement", r.err)
        self.assertIn("map_frame(", r.err)
        self.assertEqual(len(r.err.strip().splitlines()), 1, "one line")
        self.assertEqual(self.read("job.snap"), before)
        self.assertEqual(self.listing(), files)
        r = self.stasis("resume", "job.snap", "--patch", "job.py")
        self.assertEqual(r.rc, 102, r)
        self.assertEqual(r.out, "")          # nothing of the program ran

    def test_patch_of_a_threaded_program(self):
        self.write("job.py", THREADED)
        first = self.suspended("job.py")
        self.write("job.py", THREADED.replace("return x * 2\n", "return x * 2 + 1000\n"))
        r = self.stasis("patch", "job.snap", "--source", "job.py")
        self.assertEqual(r.rc, 0, r)
        second = self.stasis("resume", "job.snap")
        self.assertEqual(second.rc, 0, second)
        self.write("expected.py", THREADED_EXPECTED)
        self.assertEqual(first.out + second.out, self.plain("expected.py"))

    def test_patched_program_suspends_and_is_patched_again(self):
        """The new source travels in the snapshot: a second patch is diffed against the first."""
        program = NOT_ON_STACK.replace("if i == 2:", "if i in (1, 3):")
        self.write("job.py", program)
        out = self.suspended("job.py").out
        v2 = program.replace('return f"item {i}"', 'return f"v2 {i}"')
        self.write("job.py", v2)
        r = self.stasis("resume", "job.snap", "--patch", "job.py")
        self.assertEqual(r.rc, 75, r)
        out += r.out
        self.write("job.py", v2.replace('return f"v2 {i}"', 'return f"v3 {i}"'))
        r = self.stasis("patch", "job.snap", "--source", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("patch 2 of job.snap", r.out)
        r = self.stasis("resume", "job.snap")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(out + r.out, "item 0\nitem 1\nv2 2\nv2 3\nv3 4\nv3 5\n")


class MapFrame(PatchTestCase):
    PROGRAM = """
    import stasis

    def count(n):
        total = 0
        for i in range(n):
            total += i
            stasis.suspend() if i == 2 else None
            print("at", i, total)
        return total

    print("sum", count(5))
    """

    def test_deleted_statement_refused_then_mapped_with_a_renamed_local(self):
        self.write("job.py", self.PROGRAM)
        first = self.suspended("job.py")
        # The statement the frame is at (print) is deleted; `total` is renamed `acc`.
        new = self.PROGRAM.replace('            print("at", i, total)\n', "").replace("total", "acc") \
            .replace("        return acc", '        print("acc", acc)\n        return acc')
        self.write("job.py", new)
        r = self.stasis("resume", "job.snap", "--patch", "job.py")
        self.assertEqual(r.rc, 102, r)
        self.assertIn("count (old line 8): its statement was deleted", r.err)
        self.write("allow.py", """
            import stasis.update
            stasis.update.map_frame("__main__.count", 8, to_line=5, rename={"total": "acc"})
            """)
        r = self.stasis("resume", "job.snap", "--patch", "job.py", "--update", "allow.py")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(first.out + r.out, "at 0 0\nat 1 1\nacc 10\nsum 10\n")


if __name__ == "__main__":
    unittest.main()
