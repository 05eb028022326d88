"""Shared harness: run `work(n)` five times, print a checksum and the smallest CPU time of the
work itself.  CPU time (not wall clock) because the benchmark machine is shared: time spent
waiting for a core is not the program's; start-up, imports and the one-off rewrite are
outside the timed region.

With BM_SERVE=1 in the environment the program serves runs instead: for each line "run" on its
stdin it runs `work(n)` once and prints `TIME <cpu seconds> <result>`, so that a driver can
interleave single runs of several live processes (bench/rewriter/run.py, "paired").
"""
import os
import sys
import time


def main(work, n, repeat=5):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else n
    if os.environ.get('BM_SERVE') == '1':
        for line in sys.stdin:
            if line.strip() != 'run':
                break
            t0 = time.process_time()
            result = work(n)
            print(f'TIME {time.process_time() - t0:.6f} {result}', flush=True)
        return
    best = float('inf')
    for _ in range(repeat):
        t0 = time.process_time()
        result = work(n)
        best = min(best, time.process_time() - t0)
    print(f'RESULT {result}')
    print(f'TIME {best:.6f}')
