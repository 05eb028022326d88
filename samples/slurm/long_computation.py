"""A long computation for a batch cluster: counts the primes below a bound, one segment of a
segmented sieve at a time, and writes one result line per segment to a results file. It is
deterministic, so the results of a run that was stopped and resumed any number of times must be
identical to an uninterrupted run's.

    python3 long_computation.py --segments 400 --out primes.txt          # plain
    stasis run --snapshot job.snap --resume-if-present --checkpoint-every 300 \
        long_computation.py --segments 400 --out primes.txt               # as samples/slurm/job.sh runs it

--pace SECONDS makes every segment last at least that long (the tests use it so that a run lasts
about as long on a busy machine as on an idle one).
"""
import argparse
import math
import sys
import threading
import time
import zlib


def small_primes(limit):
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\0\0"
    for p in range(2, int(limit ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytearray(len(sieve[p * p::p]))
    return [p for p in range(limit + 1) if sieve[p]]


def segment(lo, hi, base):
    """The primes in [lo, hi), crossed out with the base primes."""
    flags = bytearray([1]) * (hi - lo)
    for p in base:
        if p * p >= hi:
            break
        start = max(p * p, (lo + p - 1) // p * p)
        flags[start - lo::p] = bytearray(len(flags[start - lo::p]))
    return [lo + i for i, f in enumerate(flags) if f and lo + i > 1]


class Progress(threading.Thread):
    """A second thread: keeps a running CRC-32 of every prime found, fed through a list."""

    def __init__(self):
        super().__init__(name="digest", daemon=True)
        self.pending = []
        self.crc = 0
        self.wake = threading.Event()
        self.done = threading.Event()

    def run(self):
        while True:
            self.wake.wait(0.05)
            self.wake.clear()
            while self.pending:
                batch = self.pending.pop(0)
                if batch is None:
                    self.done.set()
                    return
                self.crc = zlib.crc32(",".join(map(str, batch)).encode(), self.crc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=400)
    ap.add_argument("--size", type=int, default=100_000, help="numbers per segment")
    ap.add_argument("--out", default="primes.txt", help="one line per segment")
    ap.add_argument("--pace", type=float, default=0.0, help="seconds a segment lasts at least")
    args = ap.parse_args()

    bound = args.segments * args.size
    base = small_primes(math.isqrt(bound) + 1)
    progress = Progress()
    progress.start()
    count = 0
    with open(args.out, "w") as out:
        for k in range(args.segments):
            started = time.monotonic()
            found = segment(k * args.size, (k + 1) * args.size, base)
            count += len(found)
            progress.pending.append(found)
            progress.wake.set()
            out.write(f"segment {k}: {len(found)} primes, {count} so far, last {found[-1] if found else '-'}\n")
            if k % 10 == 0:
                print(f"segment {k} of {args.segments}: {count} primes so far", flush=True)
            left = args.pace - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
        progress.pending.append(None)
        progress.wake.set()
        progress.done.wait()
        out.write(f"total {count} primes below {bound}, crc32 {progress.crc:08x}\n")
    print(f"done: {count} primes below {bound}")


if __name__ == "__main__":
    sys.exit(main())
