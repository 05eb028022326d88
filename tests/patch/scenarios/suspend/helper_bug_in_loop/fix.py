# Cleaning names in a data loop; the helper forgets to strip spaces. Suspended half-way.
import stasis

NAMES = ["  ada", "grace ", "linus", " guido ", "barbara", "ken  "]


def clean(name):
    return name.strip().title()


def run(names):
    out = []
    for i, n in enumerate(names):
        out.append(clean(n))
        print(i, repr(out[-1]))
        if i == 2:
            stasis.suspend()
    return out


print(run(NAMES))
