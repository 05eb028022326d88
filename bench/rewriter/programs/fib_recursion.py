"""Recursion: naive Fibonacci and Ackermann-style mutual recursion."""
from bm_common import main


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def work(n):
    total = fib(n)
    for k in range(200):
        total += is_even(k + 300)
    return total


if __name__ == '__main__':
    main(work, 30)
