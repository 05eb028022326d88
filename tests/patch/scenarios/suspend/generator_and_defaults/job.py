# A generator suspended mid-way (it finishes on its old code) and a function whose default
# argument changes (the new default applies to calls after the patch); a new generator made after
# the patch runs the new code.
import stasis


def batches(items, size=2):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def label(batch, sep="+"):
    return sep.join(batch)


def main():
    data = list("abcdefgh")
    for n, b in enumerate(batches(data)):
        print(n, label(b))
        if n == 1:
            stasis.suspend()
    for n, b in enumerate(batches(data, 3)):
        print("again", n, label(b))


main()
