def a(x):
    return b(x + 1) * 2


def b(x):
    return c(x) + c(x + 1)


def c(x):
    return x * x


for i in range(10):
    print(i, a(i), a(a(i) % 7))
