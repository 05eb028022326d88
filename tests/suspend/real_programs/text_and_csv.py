"""Files being read line by line (for line in f), csv readers and writers around them, and
re.Match objects left bound after loops."""
import csv
import re

with open("words.txt", "w", encoding="utf-8") as f:
    for i in range(300):
        f.write(f"line {i} {'é' * (i % 4)} {'x' * (i % 50)}\n")
with open("table.csv", "w", newline="") as f:
    w = csv.writer(f, delimiter=";")
    w.writerow(["id", "word", "note"])
    for i in range(120):
        w.writerow([i, f"w{i}", "two\nlines" if i % 9 == 0 else "a;b"])

words = open("words.txt", encoding="utf-8")
table = open("table.csv", newline="")
rows = csv.DictReader(table, delimiter=";")
out = open("out.csv", "w", newline="")
writer = csv.DictWriter(out, ["id", "length"], dialect="excel-tab")
writer.writeheader()
match = None
for step in range(100):
    line = next(words)
    for match in re.finditer(r"(\d+) (é*)", line):
        pass
    row = next(rows)
    writer.writerow({"id": row["id"], "length": len(line)})
    print(step, line.rstrip()[:30], match.groups(), match.span(), match.lastindex, row["word"],
          repr(row["note"]), rows.line_num)
last = re.search(r"(?P<n>\d+)$", line.rstrip()) or re.search(r"(\d+)", line)
print(last.groups(), last.span(), last.lastindex, last.re.pattern, match.string == line)
out.close()
with open("out.csv", newline="") as f:
    print(sum(1 for _ in f))
for line in words:
    pass
print(line.rstrip()[:20], sum(1 for _ in rows))
