def numbers():
    n = 0
    while True:
        n += 3
        yield n


gen = numbers()
pending = [next(gen) for _ in range(3)]
for i in range(10):
    pending.append(next(gen))
    print(i, pending[-1], sum(pending))
