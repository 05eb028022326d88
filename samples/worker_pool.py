"""A threaded worker pool: three workers take numbers from a queue and put results on another;
the main thread collects them. (Suspending programs with several threads is not built yet: this
sample is the target of that work; it runs plainly and under `stasis run` without suspension.)"""
import queue
import threading

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
for n in range(1, 2001):
    jobs.put(n)
for _ in threads:
    jobs.put(None)
for t in threads:
    t.join()
collected = sorted(results.get() for _ in range(2000))
print("results", len(collected), "checksum", sum(total for _, total in collected) % 1_000_000_007)
