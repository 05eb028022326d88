"""Shared harness: run `work(n)` five times, print a checksum and the smallest CPU time of the
work itself.  CPU time (not wall clock) because the benchmark machine is shared: time spent
waiting for a core is not the program's; start-up, imports and the one-off rewrite are
outside the timed region."""
import sys
import time


def main(work, n, repeat=5):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else n
    best = float('inf')
    for _ in range(repeat):
        t0 = time.process_time()
        result = work(n)
        best = min(best, time.process_time() - t0)
    print(f'RESULT {result}')
    print(f'TIME {best:.6f}')
