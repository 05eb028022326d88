def f(x):
    return x * 3 + 1


rows = []
for i in range(6):
    squares = [f(x) for x in range(i)]
    evens = {x: f(x) for x in range(i) if x % 2 == 0}
    odd_set = sorted({f(x) for x in range(i) if x % 2})
    gen_total = sum(f(x) for x in range(i))
    rows.append((squares, evens, odd_set, gen_total))
    print(i, rows[-1])
