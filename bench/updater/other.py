"""Code outside the profile pattern (bench/updater/run.py): must not slow down while
programs.* is profiled."""
from __future__ import annotations


def collatz_len(n):
    steps = 0
    while n != 1:
        n = step(n)
        steps += 1
    return steps


def step(n):
    return n // 2 if n % 2 == 0 else 3 * n + 1


def workload(limit=6000):
    return max(collatz_len(i) for i in range(1, limit))
