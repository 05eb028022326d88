data = [{"id": i, "name": "item%d" % i, "val": i * 0.5} for i in range(1_000_000)]
total = 0.0
for step in range(5):
    for j in range(step, len(data), 250_000):
        total += data[j]["val"]
    print(step, round(total, 1), data[step]["name"])
