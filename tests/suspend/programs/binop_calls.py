"""Binary operators whose both operands are calls: the left result stays on the value stack
while the right call runs (an `operand` of its resume row), so a suspension inside the right
call must bring it back. Calls log themselves: a replayed call would print twice."""
log = []


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, k):
        self.n += k
        log.append(("bump", k))
        return self.n


def noisy(tag, v):
    log.append((tag, v))
    return v


def scale(v):
    return noisy("scale", v * 3)


c = Counter()
for i in range(14):
    # left: plain call; right: a recursion deep enough to be suspended inside
    a = noisy("left", i) * fib(i)
    # left: method call with its own lifted argument; right: method call
    b = c.bump(noisy("arg", i)) - c.bump(1)
    # right operand needs a statement of its own (nested call): left goes to a temporary
    d = noisy("l2", i) + scale(noisy("r2", i))
    # string and list operators, result used as an argument
    s = str(noisy("s", i)) + repr(fib(i % 5))
    print(i, a, b, d, s, fib(i) + fib(i + 1) - fib(i + 2))
print(len(log), log[-6:])
