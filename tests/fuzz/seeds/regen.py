"""Writes tests/fuzz/seeds/heap_v<N>.golden: a snapshot that uses every op of the heap engine that an
embedded interpreter without the stasis package can load (no registered handlers), as a seed for
loads_fuzz. Run with build/bin/python after a format-version bump (and delete the old seed)."""
import array
import collections
import datetime
import decimal
import functools
import os
import pickle
import re
import weakref

import stasis


class Keep:  # only used while dumping; the seed refers to stdlib classes only
    pass


def value():
    def make():
        n = 1

        def f(x=2, *, y=3):
            return x + y + n
        return f
    ba = bytearray(b"xy")
    d = {"set": {1, 2}, "fs": frozenset({3}), "c": 1 + 2j, "ba": ba, "mv": memoryview(ba), "e": ...,
         "ni": NotImplemented, "floats": [0.5 * i for i in range(50)], "range": range(3),
         "od": collections.OrderedDict(a=1), "dq": collections.deque([1]), "dec": decimal.Decimal("1.5"),
         "dt": datetime.date(2020, 1, 1), "re": re.compile("a+"), "p": functools.partial(int, base=2),
         "it": iter([1, 2, 3]), "mod": os, "cls": collections.Counter, "f": make(),
         "lam": lambda v: v, "exc": ValueError("x"), "dead": weakref.ref(decimal.Decimal(1).__class__),
         "buf8": pickle.PickleBuffer(array.array("d", range(40))),
         "buf1": pickle.PickleBuffer(b"read-only")}
    d["self"] = d
    return d


path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"heap_v{stasis.FORMAT_VERSION}.golden")
with open(path, "wb") as f:
    f.write(stasis.dumps(value()))
print("wrote", path)
