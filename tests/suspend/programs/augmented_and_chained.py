def val(x):
    return x


totals = {"a": 0, "b": 0}
for i in range(10):
    totals["a"] += val(i)
    totals["b"] -= val(i) * 2
    if val(0) <= val(i) < val(5) and val(i) % 2 == 0:
        print(i, "inside", totals)
    else:
        print(i, "outside", totals)
