def counter(start):
    count = start

    def step(k):
        nonlocal count
        count += k
        return count
    return step


steps = [counter(i * 10) for i in range(3)]
shared = steps[1]
for round_ in range(6):
    for s in steps:
        print(round_, s(round_))
print("shared is steps[1]:", shared is steps[1], shared(0))
