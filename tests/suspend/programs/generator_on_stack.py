def squares(n):
    for i in range(n):
        yield i * i


def consume():
    total = 0
    for v in squares(20):
        total += v
        print("got", v, total)
    return total


print("total", consume())
