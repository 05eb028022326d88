import queue
import threading

tasks = queue.Queue()
results = queue.Queue()


def worker(wid):
    while True:
        item = tasks.get()
        if item is None:
            break
        results.put((item, item * item, wid % 1))


threads = [threading.Thread(target=worker, args=(w,), name="worker-%d" % w) for w in range(3)]
for t in threads:
    t.start()
for i in range(30):
    tasks.put(i)
for _ in threads:
    tasks.put(None)
for t in threads:
    t.join()
collected = sorted(results.get() for _ in range(30))
print(collected[:5], sum(sq for _, sq, _ in collected))
