import sys
sys.setrecursionlimit(5000)


def descend(n, acc):
    if n == 0:
        return acc
    return descend(n - 1, acc + n % 7)


for depth in (50, 200, 800):
    print(depth, descend(depth, 0))
