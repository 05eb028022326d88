# A recursive walk over a nested configuration; a leaf deep down has a value of the wrong type.
CONFIG = {
    "name": "svc",
    "limits": {"cpu": 2, "mem": 512},
    "replicas": 3,
    "storage": {"disks": {"a": 100, "b": "200"}, "cache": 16},
    "zone": {"id": 7},
}


def leaf(path, value):
    return value + 0


def walk(node, path=""):
    total = 0
    for key in sorted(node):
        value = node[key]
        here = f"{path}/{key}"
        if isinstance(value, dict):
            total += walk(value, here)
        elif isinstance(value, str) and key == "name":
            print(here, "=", value)
        else:
            n = leaf(here, value)
            total += n
            print(here, "=", n, "running", total)
    return total


print("sum", walk(CONFIG))
