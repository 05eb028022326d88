parts = []
text = ""
for i in range(25):
    word = "w%02d" % i
    parts.append(word.upper() if i % 3 else word)
    text = "-".join(parts[-4:])
    if i % 5 == 4:
        print(i, text, len("".join(parts)))
