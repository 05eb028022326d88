"""Generators: a lazy pipeline of generator functions and expressions."""
from bm_common import main


def numbers(n):
    i = 0
    while i < n:
        yield i
        i += 1


def squares(it):
    for x in it:
        yield x * x


def only_odd(it):
    for x in it:
        if x % 2:
            yield x


def windows(it, size):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield tuple(buf)
            buf.pop(0)


def delegate(n):
    yield from only_odd(squares(numbers(n)))


def work(n):
    total = 0
    for w in windows(delegate(n), 3):
        total = (total + sum(w)) % 1000003
    total += sum(x % 7 for x in numbers(n // 2))
    return total


if __name__ == '__main__':
    main(work, 800000)
