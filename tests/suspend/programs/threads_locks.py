import threading

lock = threading.Lock()
counter = {"n": 0}
done = threading.Event()


def bump(times):
    for _ in range(times):
        with lock:
            counter["n"] += 1


workers = [threading.Thread(target=bump, args=(500,)) for _ in range(4)]
for w in workers:
    w.start()
for w in workers:
    w.join()
done.set()
print("total", counter["n"], done.is_set(), threading.active_count())
