"""Closures and higher-order functions: counters, composition, partial application."""
from bm_common import main


def make_counter():
    count = 0

    def inc(step=1):
        nonlocal count
        count += step
        return count
    return inc


def compose(f, g):
    return lambda x: f(g(x))


def adder(k):
    def add(x):
        return x + k
    return add


def memo(fn):
    cache = {}

    def wrapper(x):
        if x in cache:
            return cache[x]
        r = cache[x] = fn(x)
        return r
    return wrapper


def work(n):
    c = make_counter()
    pipeline = compose(adder(3), compose(adder(5), lambda v: v * 2))
    sq = memo(lambda v: v * v % 97)
    total = 0
    for i in range(n):
        total += pipeline(i) % 11
        total += sq(i % 500)
        c(i % 3)
    return total + c(0)


if __name__ == '__main__':
    main(work, 500000)
