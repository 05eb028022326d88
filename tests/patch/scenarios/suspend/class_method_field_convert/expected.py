accounts = [["ann", 100.0], ["bob", 2500.0], ["cyd", 40.0]]
for n in (1, 2):
    for a in accounts:
        a[1] += a[1] * 0.5 / 100
        print(n, f"{a[0]:5} {a[1]:10.2f}")
for a in accounts:
    a[1] = round(a[1] * 100)
    a.append([])
for n in (3, 4):
    for a in accounts:
        bonus = 1 if a[1] > 100000 else 0
        a[1] += a[1] * (0.5 + bonus) // 100
        a[2].append(a[1])
        print(n, f"{a[0]:5} {a[1] / 100:10.2f} ({len(a[2])} months)")
print("end", [a[0] for a in accounts])
