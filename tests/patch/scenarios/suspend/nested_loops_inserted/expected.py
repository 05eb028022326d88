def show(row):
    print(" ".join(f"{x:>3}" for x in row))


print("  1   2   3   4")                       # row 1: old code
show([2, 4, 6, 8, "*", "|"])                   # row 2: j = 1..3 old, j = 4 new
print("row", 3)
show(["|", 3, 6, 9, 12, "*", "|"])
print("row", 4)
show(["|", 4, "*", 8, "*", 12, "*", 16, "*", "|"])
print("cells", 16)
