# Moving averages over sensor windows: the last window runs off the end of its list.
READINGS = [3, 5, 8, 13, 21, 34, 55]


def window(values, start, width):
    return [values[start + k] for k in range(width)]


def mean(values):
    return sum(values) / len(values)


def smooth(values, width):
    out = []
    start = 0
    while start < len(values):
        w = window(values, start, width)
        out.append(round(mean(w), 3))
        print("window", start, w, out[-1])
        start += 2
    return out


print("smoothed", smooth(READINGS, 3))
