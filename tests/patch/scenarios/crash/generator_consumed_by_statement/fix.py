# Chunks of sensor lines parsed by a generator that a statement consumes whole (list()); one line
# of the third chunk is bad. The statement that consumed the generator runs again with the fix.
CHUNKS = [
    ["t=1 v=10", "t=2 v=12"],
    ["t=3 v=11"],
    ["t=4 v=9", "t=5 v=?", "t=6 v=14"],
    ["t=7 v=15"],
]


def readings(lines):
    for line in lines:
        t, v = (field.split("=")[1] for field in line.split())
        if v.isdigit():
            yield int(t), int(v)


def summarize(chunks):
    peak = None
    for n, chunk in enumerate(chunks):
        rows = list(readings(chunk))
        best = max(rows, key=lambda r: r[1])
        peak = best if peak is None or best[1] > peak[1] else peak
        print(f"chunk {n}: {len(rows)} rows, best {best}, peak so far {peak}")
    return peak


print("peak", summarize(CHUNKS))
