"""Producer/consumer on a Condition over an RLock; a thread that holds an RLock (twice) across
several statements; sys.exc_info-free waits with wait_for."""
import threading

cond = threading.Condition()          # an RLock underneath
shelf = []
consumed = []
big = threading.RLock()
ledger = {"entries": 0}


def producer(n):
    for i in range(n):
        with cond:
            shelf.append(i * 3)
            cond.notify()
    with cond:
        shelf.append(None)
        cond.notify_all()


def consumer():
    while True:
        with cond:
            cond.wait_for(lambda: shelf)
            item = shelf.pop(0)
            if item is None:
                shelf.append(None)    # let the other consumer see the end too
                cond.notify_all()
                return
        consumed.append(item)


def bookkeeper(rounds):
    for r in range(rounds):
        with big:
            with big:                 # held twice: owner and count must come back together
                ledger["entries"] += 1
                total = ledger["entries"] * 2
            ledger["last"] = total


threads = [threading.Thread(target=consumer, name="c%d" % i) for i in range(2)]
threads.append(threading.Thread(target=bookkeeper, args=(300,), name="books"))
threads.append(threading.Thread(target=producer, args=(200,), name="prod"))
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(consumed), sum(consumed), sorted(consumed)[:5], ledger)
print([t.name for t in threading.enumerate()], threading.active_count())
