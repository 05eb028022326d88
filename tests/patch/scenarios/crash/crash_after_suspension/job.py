# A long job that checkpoints by suspending half-way (when run under Stasis), then crashes later.
try:
    from stasis import suspend
except ImportError:          # a plain run
    def suspend():
        pass


def score(word):
    return sum(ord(c) - 96 for c in word) // len(word.strip())


def main(words):
    best = None
    for n, w in enumerate(words):
        s = score(w)
        if best is None or s > best[1]:
            best = (w, s)
        print(n, w, s, best)
        if n == 2:
            suspend()
    return best


print("best", main(["apple", "kiwi", "fig", "   ", "melon", "zoo"]))
