import functools
import json


def score(item):
    return (item["w"] * 7) % 11


def combine(acc, item):
    return acc + score(item)


data = [{"w": i, "name": "n%d" % i} for i in range(15)]
for i in range(5):
    ranked = sorted(data, key=score)
    total = functools.reduce(combine, data, 0)
    text = json.dumps(ranked[:2], sort_keys=True)
    print(i, total, text)
    data.append({"w": i * 13, "name": "extra"})
