"""A threaded worker pool: three workers take numbers from a queue and put results on another;
the main thread collects them. Under `stasis run --quota S` it is suspended with its workers
(parked at safe points or blocked in queue.get) and resumed with them in a fresh process.
`worker_pool.py [N]`: N jobs (2000)."""
import queue
import sys
import threading

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000

jobs: "queue.Queue[int | None]" = queue.Queue()
results: "queue.Queue[tuple[int, int]]" = queue.Queue()


def worker() -> None:
    while True:
        n = jobs.get()
        if n is None:
            return
        total = sum(i * i for i in range(n))
        results.put((n, total))


threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(3)]
for t in threads:
    t.start()
for n in range(1, N + 1):
    jobs.put(n)
for _ in threads:
    jobs.put(None)
for t in threads:
    t.join()
collected = sorted(results.get() for _ in range(N))
print("results", len(collected), "checksum", sum(total for _, total in collected) % 1_000_000_007)
