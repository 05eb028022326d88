# Word statistics; an empty line makes the longest-word lookup fail on an empty sequence.
TEXT = ["the quick brown fox", "jumps over", "", "the lazy dog"]
PLACEHOLDER = "-"


def longest(words):
    return max(words, key=len)


def safe_longest(words):
    return longest(words) if words else PLACEHOLDER


def stats(lines):
    seen = 0
    for n, line in enumerate(lines):
        words = line.split()
        seen += len(words)
        best = safe_longest(words)
        print(n, len(words), best, seen)
    return seen


print("words", stats(TEXT))
