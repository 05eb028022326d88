# A generator parses log lines; one line has no level separator and makes it raise.
LOG = [
    "INFO: started",
    "WARN: disk 80%",
    "malformed line",
    "INFO: done",
]


def records(lines):
    for n, line in enumerate(lines):
        level, text = line.split(": ", 1)
        yield n, level, text.upper()


def scan(lines):
    counts = {}
    for n, level, text in records(lines):
        counts[level] = counts.get(level, 0) + 1
        print(n, level, text, counts)
    return counts


print("counts", scan(LOG))
