"""The object graphs stored in the golden snapshots of the current format version.

tests/golden/regen.py writes them; tests/format/test_golden.py checks that (a) the golden files
still load to these values, (b) dumping these values today produces the same payload bytes — so a
schema change without a format-version bump fails the tests — and (c) the golden object file uses
every op of format/schema.h, so no op escapes (b). Extend the value when a format version adds an
op or a type (and regenerate in the same commit as the bump).

Everything here is deterministic: no hash-seed-dependent set orders (sets of ints), code compiled
from a fixed file name (not this file's path, which differs between checkouts), no time or host.
"""
import array
import collections
import pickle
import threading
import weakref

import stasis  # noqa: F401  (the built-in handlers: a lock is written by a registered handler)


class Plain:
    """An instance of an importable class: NewObj + Build of its __dict__."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __eq__(self, other):
        return type(other) is Plain and (self.a, self.b) == (other.a, other.b)


def numbers(n):
    """A generator function by reference; a suspended generator of it: Generator + GeneratorFrame."""
    for i in range(n):
        yield i


# Code objects by value come from a fixed "file", so that their bytes are the same everywhere.
_SOURCE = '''
def make_counter(start):
    count = start                 # a cell: Cell, CellSet
    def step(by=1, *, twice=False):
        nonlocal count
        count += by * (2 if twice else 1)
        return count
    step.note = "counter"         # FunctionState: __dict__
    return step

def make_class():
    class Local:                  # not importable: Class + ClassState
        kind = "local"
        def double(self):
            return self.value * 2
    return Local
'''
_NAMESPACE = {"__name__": "golden_code"}
exec(compile(_SOURCE, "<golden>", "exec"), _NAMESPACE)


def golden_value():
    shared = ["shared", 1]
    value = {
        "none": None, "bools": [True, False],
        "ints": [0, 1, -1, 2**62, -2**63, 2**64, -2**200, 12345678901234567890],
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e-310],
        "strs": ["", "ascii", "latin-1 é", "bmp ☃", "astral 🐍", "lone \ud800 surrogate"],
        "bytes": [b"", b"\x00\xff" * 3],
        "tuples": [(), (1,), (1, (2, (3,)))],
        "nested": {"a": {"b": {"c": []}}},
        "shared": [shared, shared],
    }
    value["self"] = value
    return value


def golden_every_op():
    """Uses every op of format/schema.h (test_golden checks it against the op table)."""
    v = golden_value()
    loop = []
    loop.append((loop,))                               # a tuple reached again through a list: Pop
    s = set(range(40))
    for i in range(0, 40, 3):
        s.discard(i)                                   # a table with dummies: SetLayout
    shape_a, shape_b = {"x": 1, "y": 2}, {"x": 3, "y": 4}
    error = ValueError("outer")
    error.__cause__ = KeyError("inner")                # ExceptionState
    gen = numbers(5)
    next(gen)                                          # suspended at its yield
    referent = Plain                                   # lives on: WeakRef
    dead = weakref.ref(Plain(0, 0))                    # DeadWeakRef
    counter = _NAMESPACE["make_counter"](10)
    counter(2)
    local = _NAMESPACE["make_class"]()
    instance = local()
    instance.value = 21
    v.update({
        "ellipsis": ..., "notimplemented": NotImplemented, "complex": 1 + 2j, "float": 2.5,
        "bytearray": bytearray(b"ba"), "set": s, "frozenset": frozenset({1, 2, 3}),
        "float_run": [i / 4 for i in range(20)],       # Floats
        "class_by_ref": collections.OrderedDict,       # Global
        "module": collections,                         # Module
        "range": range(1, 10, 2),                      # Reduce
        "plain": Plain(1, "one"),                      # NewObj, Build
        "deque": collections.deque([1, 2, 3]),         # Reduce + ListItems
        "ordered": collections.OrderedDict(a=1),       # Reduce + DictItems
        "shapes": [shape_a, shape_b, shape_a, shape_b],  # ShapeValues (shared dicts of one shape)
        "records": [{"k": i, "w": -i} for i in range(3)],  # ShapeDict (unshared dicts of one shape)
        "loop": loop, "error": error, "generator": gen,
        "weak": weakref.ref(referent), "dead": dead,
        "lock": threading.Lock(),                      # Registered (a built-in handler)
        "counter": counter,                            # Code, Function, FunctionState, Cell, CellSet
        "local_class": local, "local_instance": instance,
        # Buffer (version 7): byte planes of 8-byte items (past the 16-item SIMD kernels), and
        # plain bytes of a read-only buffer
        "buffers": [pickle.PickleBuffer(array.array("d", range(-100, 100))),
                    pickle.PickleBuffer(b"read-only \x00\xff")],
    })
    return v


def golden_program():
    """A program payload's deterministic parts: the header's hash seed and metadata, and a root
    with every field of the program record (format/program_schema.h) — values that do not depend
    on the machine, the time or a run (a real suspension's frames and paths do)."""
    from stasis import _engine
    root = {name: None for name in _engine.PROGRAM_FIELDS}
    root.update({"layout": _engine.PROGRAM_LAYOUT, "argv": ["prog.py", "--flag"], "threads": [],
                 "modules": {"__main__": {"answer": 42}}, "recursion_limit": 1000, "generation": 1})
    meta = {name: [] for name in _engine.META_FIELDS}
    meta.update({"modules": ["__main__"], "sys_path": ["/srv/prog"], "roots": ["/srv/prog"]})
    return root, 1234567, meta
