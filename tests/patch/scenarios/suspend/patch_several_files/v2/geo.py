import math


def distance(a, b):
    return abs(b[0] - a[0]) + abs(b[1] - a[1])
