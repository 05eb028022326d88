def mean(xs):
    return round(sum(xs) / len(xs), 2)


def median(xs):
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def spread(xs):
    return f"{min(xs)}..{max(xs)} median {median(xs)}"
