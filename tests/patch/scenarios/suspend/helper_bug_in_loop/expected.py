NAMES = ["  ada", "grace ", "linus", " guido ", "barbara", "ken  "]
out = []
for i, n in enumerate(NAMES):
    out.append(n.title() if i <= 2 else n.strip().title())
    print(i, repr(out[-1]))
print(out)
