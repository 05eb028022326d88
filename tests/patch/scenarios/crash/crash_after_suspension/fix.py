# A long job that checkpoints by suspending half-way (when run under Stasis), then crashes later.
try:
    from stasis import suspend
except ImportError:          # a plain run
    def suspend():
        pass


def score(word):
    word = word.strip()
    if not word:
        return 0
    return sum(ord(c) - 96 for c in word) // len(word)


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
