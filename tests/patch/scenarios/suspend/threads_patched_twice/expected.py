r = {("w1", 1): 2, ("w2", 1): 2}
print("phase 1", sorted(r.items()))
r.update({("w1", 2): "w1:20", ("w2", 2): "w2:20"})
print("phase 2", sorted(r.items()))
r.update({("w1", 3): ("w1", 300), ("w2", 3): ("w2", 300)})
print("phase 3", sorted(r.items()))
