# Two worker threads share a lock; the main thread suspends after a barrier; the work function
# is patched, the program suspends again (the patched snapshot runs on) and is patched a second
# time; each patch is diffed against the source the snapshot now holds.
import threading

import stasis

lock = threading.Lock()
results = {}
barrier = threading.Barrier(3)
phase2 = threading.Event()
phase3 = threading.Event()


def work(name, x):
    return (name, x * 100)


def worker(name):
    for phase, ev in ((1, None), (2, phase2), (3, phase3)):
        if ev is not None:
            ev.wait()
        with lock:
            results[(name, phase)] = work(name, phase)
        if phase == 1:
            barrier.wait()


threads = [threading.Thread(target=worker, args=(n,), name=n) for n in ("w1", "w2")]
for t in threads:
    t.start()
barrier.wait()
print("phase 1", sorted(results.items()))
stasis.suspend()
phase2.set()
while len(results) < 4:
    threading.Event().wait(0.01)
print("phase 2", sorted(results.items()))
stasis.suspend()
phase3.set()
for t in threads:
    t.join()
print("phase 3", sorted(results.items()))
