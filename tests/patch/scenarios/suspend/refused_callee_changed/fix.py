# The function the suspended frame is inside gets replaced by another one at its call site:
# the caller's frame cannot continue (replay must call the same function); refused, exit 102.
import stasis


def slow_square(x):
    if x == 3:
        stasis.suspend()
    return x * x


def fast_square(x):
    return x ** 2


def main():
    out = []
    for x in range(6):
        out.append(fast_square(x))
    print(out)


main()
