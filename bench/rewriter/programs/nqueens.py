"""Recursion, sets and generators: count n-queens solutions."""
from bm_common import main


def solve(n, row, cols, diag1, diag2):
    if row == n:
        yield 1
        return
    for c in range(n):
        if c in cols or (row + c) in diag1 or (row - c) in diag2:
            continue
        cols.add(c)
        diag1.add(row + c)
        diag2.add(row - c)
        yield from solve(n, row + 1, cols, diag1, diag2)
        cols.remove(c)
        diag1.remove(row + c)
        diag2.remove(row - c)


def work(n):
    return sum(solve(n, 0, set(), set(), set())) + sum(1 for _ in solve(n - 1, 0, set(), set(), set()))


if __name__ == '__main__':
    main(work, 11)
