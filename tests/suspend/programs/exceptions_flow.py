class AppError(Exception):
    pass


def parse(token):
    if not token.isdigit():
        raise AppError("bad token %r" % token)
    return int(token)


tokens = "1 2 x 4 y 6 7 z 9".split()
good, bad = [], []
for t in tokens:
    try:
        good.append(parse(t))
    except AppError as e:
        bad.append(str(e))
    print(t, sum(good), len(bad))
print(bad)
