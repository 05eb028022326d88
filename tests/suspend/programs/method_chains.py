# Chained calls whose intermediate results share one hidden temporary in the resumable form
# (`.t0 = .t0.m(...)`), suspended inside each link of the chain.
class Builder:
    def __init__(self, items=()):
        self.items = list(items)

    def add(self, x):
        total = helper(x)
        return Builder(self.items + [total])

    def double(self):
        return Builder([helper(v) * 2 for v in self.items])

    def result(self):
        return sum(self.items)


def helper(v):
    return v + 1


def wrap(x):
    return [helper(x[0] if isinstance(x, list) else x)]


index = {}


def record(i, w):
    index.setdefault(w, {}).setdefault(i % 2, []).append(helper(i))


def chain(i):
    return Builder([i]).add(i).double().add(helper(i)).result()


def compose(f, g):
    return lambda x: f(g(x))


pipe = compose(helper, compose(helper, lambda v: v * 2))
for i in range(12):
    record(i, "abc"[i % 3])
    print(i, chain(i), pipe(i), wrap(wrap(helper(i))))
print(sorted((k, sorted(v.items())) for k, v in index.items()))
