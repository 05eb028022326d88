inventory = {}
log = []
for i in range(20):
    key = "k%d" % (i % 6)
    inventory.setdefault(key, []).append(i)
    log.append((key, len(inventory[key])))
    if i % 4 == 3:
        print(i, sorted(inventory.items())[:3], log[-2:])
print(inventory)
