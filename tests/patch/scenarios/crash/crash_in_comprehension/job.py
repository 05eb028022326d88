# Parsing CSV-like rows with a dict comprehension; one row has a non-numeric field.
ROWS = [
    "alpha=1,beta=2",
    "gamma=3,delta=4",
    "eps=5,zeta=six",
    "eta=7",
]


def parse(row):
    return {k: int(v) for k, v in (p.split("=") for p in row.split(","))}


def load(rows):
    merged = {}
    for n, row in enumerate(rows):
        fields = parse(row)
        merged.update(fields)
        print(n, sorted(fields.items()), len(merged))
    return merged


print(sorted(load(ROWS).items()))
