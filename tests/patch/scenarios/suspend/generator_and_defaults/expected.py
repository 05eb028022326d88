print(0, "a+b")
print(1, "c+d")
print(2, "e/f")        # the suspended generator keeps its old code; label has its new default
print(3, "g/h")
print("again", 0, "c/b/a")
print("again", 1, "f/e/d")
print("again", 2, "h/g")
