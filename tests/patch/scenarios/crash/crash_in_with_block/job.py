# A batch writer used as a context manager: a record with a bad type crashes inside the block;
# __exit__ must run once, after the fixed batch completes.
class Batch:
    def __init__(self, name):
        self.name = name
        self.rows = []

    def __enter__(self):
        print("open", self.name)
        return self

    def __exit__(self, *exc):
        print("close", self.name, len(self.rows), "rows", "error" if exc[0] else "ok")
        return False

    def add(self, row):
        self.rows.append("|".join(row))


def export(records):
    with Batch("people") as b:
        for r in records:
            b.add(r)
            print("added", b.rows[-1])
    return b


export([("ann", "31"), ("bob", 42), ("cy", "19")])
print("exported")
