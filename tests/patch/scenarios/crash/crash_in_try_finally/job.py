# Nested loops over a matrix inside try/finally; one cell holds a string. The finally only records.
events = []


def cell_value(row, j):
    return int(row[j]) * 2


def total(matrix):
    s = 0
    try:
        for i, row in enumerate(matrix):
            for j in range(len(row)):
                v = cell_value(row, j)
                s += v
                print(i, j, v, s)
    finally:
        events.append(f"total finished at {s}")
    return s


grand = total([[1, 2], [3, "x", 5], [6]])
print("grand", grand, events)
