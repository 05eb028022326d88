# Decorated functions change their bodies: a functools.wraps logger, an lru_cache, a staticmethod,
# a classmethod and a property. The decorations stay; the code inside them is replaced.
import functools

import stasis

CALLS = []


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        CALLS.append(fn.__name__)
        return fn(*args)
    return wrapper


@logged
def area(w, h):
    return w * h + 1000


@functools.lru_cache(maxsize=None)
def fib(n):
    return -n if n < 2 else fib(n - 1) - fib(n - 2)


class Temp:
    scale = "C"

    def __init__(self, c):
        self.c = c

    @staticmethod
    def clamp(v):
        return max(-10, min(10, v))

    @classmethod
    def unit(cls):
        return cls.scale.lower() + "!"

    @property
    def value(self):
        return self.clamp(self.c) * 2


def step(i):
    t = Temp(i * 30 - 40)
    print(i, area(i, i + 1), fib(i + 10), t.value, Temp.unit(), area.__name__)


for i in range(4):
    step(i)
    if i == 1:
        stasis.suspend()
print(len(CALLS), CALLS[-1])
