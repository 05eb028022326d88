def collatz(n):
    steps = 0
    while n != 1:
        if n % 2:
            n = 3 * n + 1
        else:
            n = n // 2
        steps += 1
    return steps


best = (0, 0)
n = 1
while n < 40:
    s = collatz(n)
    if s > best[1]:
        best = (n, s)
        print("new best", best)
    n += 1
print("best", best)
