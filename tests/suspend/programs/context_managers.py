"""Context managers that work in __enter__ and __exit__ long enough to be suspended there: a class
made by a call in the with statement, a @contextmanager generator, nested and stacked managers.
The object whose __enter__ ran must be the one whose __exit__ runs."""
import contextlib


class Ledger:
    def __init__(self, name, n):
        self.name = name
        self.n = n
        self.log = []

    def __enter__(self):
        total = 0
        for i in range(self.n):
            total += i % 5
        self.opened = total
        self.log.append("enter")
        return self

    def __exit__(self, *exc):
        closing = 0
        for i in range(self.n):
            closing += i % 3
        self.log.append("exit")
        print(self.name, self.opened, closing, self.log)
        return False


@contextlib.contextmanager
def section(label, n):
    acc = []
    for i in range(n):
        acc.append(i * i % 7)
    yield sum(acc)
    tail = 0
    for i in range(n):
        tail += i
    print("section", label, tail)


for round_ in range(3):
    with Ledger(f"L{round_}", 200 + round_) as ledger:
        with section(round_, 150) as s, Ledger("inner", 120) as inner:
            print(round_, s, inner.opened, ledger.opened)
