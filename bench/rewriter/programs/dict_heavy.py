"""Dict-heavy code: word counting, inverted index, nested dict updates."""
from bm_common import main

WORDS = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '
         'incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis').split()


def documents(n):
    docs = []
    for i in range(n):
        docs.append([WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(30)])
    return docs


def count_words(docs):
    counts = {}
    for doc in docs:
        for w in doc:
            counts[w] = counts.get(w, 0) + 1
    return counts


def inverted_index(docs):
    index = {}
    for i, doc in enumerate(docs):
        for pos, w in enumerate(doc):
            index.setdefault(w, {}).setdefault(i, []).append(pos)
    return index


def work(n):
    docs = documents(n)
    counts = count_words(docs)
    index = inverted_index(docs)
    stats = {w: (c, len(index[w])) for w, c in counts.items()}
    return sum(c * d for c, d in stats.values()) % 1000003


if __name__ == '__main__':
    main(work, 8000)
