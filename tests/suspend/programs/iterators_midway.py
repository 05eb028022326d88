import itertools

letters = iter("abcdefghijklmnopqrstuvwxyz")
numbers = iter(range(100, 130))
pairs = zip(letters, numbers)
counter = itertools.count(5, 2)
cycle = itertools.cycle(["x", "y", "z"])
for i in range(18):
    print(i, next(pairs), next(counter), next(cycle))
print("rest", list(pairs))
