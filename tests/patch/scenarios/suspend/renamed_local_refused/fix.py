# Locals of the suspended function are renamed (n -> count, acc -> total) and a new local is added.
import stasis


def accumulate(values):
    total = 0
    count = 0
    biggest = None
    for v in values:
        total += v
        count += 1
        biggest = v if biggest is None else max(biggest, v)
        print("count", count, "total", total, "biggest", biggest)
        if count == 2:
            stasis.suspend()
    return total


print("result", accumulate([5, 10, 20, 40]))
