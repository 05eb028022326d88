def tally(item, into=None, *, weight=1):
    if into is None:
        into = {}
    into[item] = into.get(item, 0) + weight
    return into


state = {}
for i in range(12):
    tally("a" if i % 2 else "b", state, weight=i)
    fresh = tally(i)
    print(i, sorted(state.items()), fresh)
