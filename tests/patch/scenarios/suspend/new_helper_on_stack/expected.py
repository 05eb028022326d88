total = 0
for n, r in enumerate([4, 8, 15, 16, 23, 42], 1):
    total += r
    print("row", r, "total", total)
    if n >= 3:
        print("  parity", "even" if total % 2 == 0 else "odd")
print("rows", 6)
print("checksum", total)
