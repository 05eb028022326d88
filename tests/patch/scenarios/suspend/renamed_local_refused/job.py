# Locals of the suspended function are renamed (n -> count, acc -> total) and a new local is added.
import stasis


def accumulate(values):
    acc = 0
    n = 0
    for v in values:
        acc += v
        n += 1
        print("n", n, "acc", acc)
        if n == 2:
            stasis.suspend()
    return acc


print("result", accumulate([5, 10, 20, 40]))
