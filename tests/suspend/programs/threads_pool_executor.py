"""concurrent.futures.ThreadPoolExecutor: submit/as_completed and map; workers block in
SimpleQueue.get (captured at that call), futures wait on Conditions."""
from concurrent.futures import ThreadPoolExecutor, as_completed
import threading, time

lock = threading.Lock()
done = []

def work(n):
    s = 0
    for i in range(n * 200):
        s += i % 7
    with lock:
        done.append(n)
    return n, s

results = {}
with ThreadPoolExecutor(max_workers=3) as ex:
    futs = [ex.submit(work, n) for n in range(40)]
    for f in as_completed(futs):
        n, s = f.result()
        results[n] = s
print(len(results), sum(results.values()), sorted(done)[:5])
with ThreadPoolExecutor(max_workers=2) as ex:
    print(list(ex.map(work, range(10)))[-1])
