# The function on the stack gains statements after its resume point that call a new helper,
# and lines before it (which do not run again: they are before the point it was suspended at).
import stasis


def parity(n):
    return "even" if n % 2 == 0 else "odd"


def checksum(rows):
    print("start")
    total = 0
    count = 0
    for r in rows:
        total += r
        count += 1
        if count == 3:
            stasis.suspend()
        print("row", r, "total", total)
        print("  parity", parity(total))
    print("rows", count)
    return total


print("checksum", checksum([4, 8, 15, 16, 23, 42]))
