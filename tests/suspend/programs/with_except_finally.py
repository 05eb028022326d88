class Resource:
    def __init__(self, name):
        self.name = name
        self.log = []

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, *exc):
        self.log.append("exit")
        return False


def risky(i):
    if i % 3 == 0:
        raise ValueError(i)
    return i * 2


results = []
r = Resource("r")
for i in range(10):
    with r:
        try:
            results.append(risky(i))
        except ValueError as e:
            results.append(-int(str(e)))
        finally:
            results.append(len(r.log))
    print(i, results[-2:], r.log[-2:])
