words = {"apple", "banana", "cherry", "damson", "elder", "fig", "grape", "honeydew"}
seen = set()
for i in range(16):
    seen.add("w%d" % i)
    print(i, list(words)[:4], list(seen))
