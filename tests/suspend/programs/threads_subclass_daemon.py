"""A Thread subclass with its own run(), a daemon thread that never ends, current_thread() and
main_thread() identities, join(timeout) polling, an Event and a Semaphore."""
import threading
import time

started = threading.Event()
gate = threading.Semaphore(2)
seen = {}


class Counter(threading.Thread):
    def __init__(self, label, n):
        super().__init__(name=label)
        self.n = n
        self.total = 0

    def run(self):
        started.set()
        for i in range(self.n):
            with gate:
                self.total += i
        seen[self.name] = threading.current_thread() is self


def heartbeat():
    while True:
        time.sleep(0.001)


beat = threading.Thread(target=heartbeat, name="beat", daemon=True)
beat.start()
workers = [Counter("k%d" % i, 2000 + i) for i in range(3)]
for w in workers:
    w.start()
started.wait()
main = threading.main_thread()
while any(w.is_alive() for w in workers):
    for w in workers:
        w.join(0.01)
print([w.total for w in workers], sorted(seen.items()))
print(threading.current_thread() is main, main.name, beat.daemon, beat.is_alive())
print(sorted(t.name for t in threading.enumerate()))
