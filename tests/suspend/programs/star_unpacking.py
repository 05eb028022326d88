def spread(first, *rest, **named):
    return first, len(rest), sorted(named)


records = [(1, 2, 3), (4, 5), (6,)]
for i, rec in enumerate(records * 3):
    head, *tail = rec
    result = spread(*rec, **{"k%d" % j: j for j in range(i % 3)})
    print(i, head, tail, result)
