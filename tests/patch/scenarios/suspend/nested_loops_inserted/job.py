# A multiplication grid in nested for loops, suspended in the inner loop; lines are inserted in
# both loops, before and after the resume point.
import stasis


def grid(n):
    cells = 0
    for i in range(1, n + 1):
        row = []
        for j in range(1, n + 1):
            row.append(i * j)
            cells += 1
            if (i, j) == (2, 3):
                stasis.suspend()
        print(" ".join(f"{x:3}" for x in row))
    return cells


print("cells", grid(4))
