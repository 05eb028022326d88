import math


def distance(a, b):
    return math.hypot(b[0] - a[0], b[1] - a[1])
