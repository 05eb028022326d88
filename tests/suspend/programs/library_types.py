"""Library types a script defines and keeps: Enum and IntFlag classes (written by value with their
members), a dataclass annotated with typing generics, a NamedTuple, an lru_cache function
(recursion through its C wrapper), a Counter keyed by enum members."""
import enum
from functools import lru_cache
from dataclasses import dataclass, field
from typing import NamedTuple, List
import collections

class Color(enum.Enum):
    RED = 1
    GREEN = 2

class Flag(enum.IntFlag):
    A = 1
    B = 2

@dataclass
class Item:
    name: str
    tags: List[str] = field(default_factory=list)

class Pt(NamedTuple):
    x: int
    y: int

@lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

counts = collections.Counter()
items = []
for i in range(60):
    c = Color.RED if i % 2 else Color.GREEN
    counts[c] += 1
    items.append(Item("i%d" % i, [c.name]))
    p = Pt(i, fib(i % 30))
    f = Flag.A | Flag.B if i % 3 else Flag.A
    print(i, c, p, f, counts[c], items[-1])
