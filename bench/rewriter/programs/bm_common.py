"""Shared harness: run `work(n)`, print a checksum and the time spent in the work itself."""
import sys
import time


def main(work, n):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else n
    t0 = time.perf_counter()
    result = work(n)
    dt = time.perf_counter() - t0
    print(f'RESULT {result}')
    print(f'TIME {dt:.6f}')
