def classify(v):
    match v:
        case int(n) if n < 0:
            return "negative"
        case 0:
            return "zero"
        case [x, y]:
            return "pair %s" % (x + y)
        case {"k": k}:
            return "keyed %s" % k
        case _:
            return "other"


values = [-3, 0, [1, 2], {"k": 9}, "s", 5, [4, 4]]
out = []
for v in values:
    if (c := classify(v)) != "other":
        out.append(c)
    print(repr(v), c, len(out))
