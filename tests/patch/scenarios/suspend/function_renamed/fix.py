# A helper is renamed (and improved); its only caller, suspended in its loop, now calls the new
# name. The old name is removed from the module.
import stasis


def render(x):
    return f"<{x:04d}>"


def main():
    for i in range(5):
        stasis.suspend() if i == 2 else None
        print("row", render(i * 11))
    print("has fmt:", "fmt" in globals(), "has render:", "render" in globals())


main()
