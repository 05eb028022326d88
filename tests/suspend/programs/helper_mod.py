"""A user module imported by module_imports.py (not itself a corpus program)."""
history = []


def record(x):
    history.append(x * 2)


def summary():
    return (len(history), sum(history))


def square_all(xs):
    return [x * x for x in xs]
