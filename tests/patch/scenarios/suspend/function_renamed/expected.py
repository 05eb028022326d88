for i in range(5):
    print("row", str(i * 11) if i < 2 else f"<{i * 11:04d}>")
print("has fmt:", False, "has render:", True)
