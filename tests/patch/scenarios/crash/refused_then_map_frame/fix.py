# A debug print left in a hot loop crashes (it formats a None); the fix deletes it.
def normalize(values):
    top = max(v for v in values if v is not None)
    out = []
    for v in values:
        out.append(None if v is None else round(v / top, 3))
    return out


def main():
    data = [4.0, 2.0, None, 8.0]
    print("normalized", normalize(data))


main()
