import math


def integrate(f, a, b, n):
    h = (b - a) / n
    total = 0.5 * (f(a) + f(b))
    for k in range(1, n):
        total += f(a + k * h)
    return total * h


for n in (10, 20, 40, 80, 160):
    approx = integrate(math.sin, 0.0, math.pi, n)
    print(n, "%.10f" % approx, "%.3e" % abs(approx - 2.0))
