"""Programs for the generator/coroutine tests: run as `python genprog.py dump|load|plain PATH`.
dump: advances generators and a coroutine chain mid-way, snapshots them to PATH and exits;
load: loads PATH in a fresh process and runs them to the end; plain: the uninterrupted run.
Both print the same lines when suspended generators are rebuilt correctly."""
import sys

import stasis


def counter(n):
    total = 0
    for i in range(n):
        got = yield total
        total += i * (got or 1)
    return total


def make_closure_gen(base):
    hits = []

    def gen():
        for ch in "abcdef":
            hits.append(ch)
            yield base + ch + str(len(hits))
    return gen(), hits


class Fut:
    def __init__(self):
        self.value = None

    def __await__(self):
        yield self
        return self.value


async def inner(k):
    f = Fut()
    r = await f
    return r * k


async def outer(s):
    t = inner(s)
    x = await t
    return ("outer", x + s)


def setup():
    g = counter(6)
    next(g)
    g.send(2)
    cg, hits = make_closure_gen("x")
    next(cg)
    next(cg)
    c = outer(3)
    fut = c.send(None)
    return {"g": g, "cg": cg, "hits": hits, "c": c, "fut": fut, "fresh": counter(2), "done": iter(())}


def finish(state):
    out = []
    g = state["g"]
    out.append(g.send(3))
    out.extend(g)
    out.extend(state["cg"])
    out.append(list(state["hits"]))
    fut = state["fut"]
    fut.value = 5
    try:
        state["c"].send(None)
    except StopIteration as e:
        out.append(e.value)
    out.extend(state["fresh"])
    for line in out:
        print(line)


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "plain":
        finish(setup())
    elif mode == "dump":
        stasis.dump(setup(), path)
    else:
        finish(stasis.load(path))
