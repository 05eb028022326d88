"""An in-memory SQLite database: its rows, a function and a collation of the program, the row
factory, a cursor in the middle of its rows, and transactions left open between commits."""
import sqlite3

db = sqlite3.connect(":memory:")
db.row_factory = sqlite3.Row
db.create_function("double", 1, lambda v: 2 * v)
db.create_collation("backwards", lambda a, b: (a < b) - (a > b))
db.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
for i in range(20):
    db.execute("INSERT INTO item (name, qty) VALUES (?, ?)", (f"n{i:02d}", i * 3))
db.commit()
rows = db.execute("SELECT id, double(qty) AS dq, name FROM item ORDER BY name COLLATE backwards")
total = 0
for step in range(18):
    row = next(rows)  # the cursor keeps its place across a suspension
    total += row["dq"]
    db.execute("UPDATE item SET qty = qty + 1 WHERE id = ?", (row["id"],))  # opens a transaction
    if step % 4 == 3:
        db.commit()
    print(step, row["name"], row["dq"], total, db.in_transaction)
db.commit()
print([tuple(r) for r in db.execute("SELECT name, qty FROM item ORDER BY id LIMIT 5")])
print(db.execute("SELECT sum(double(qty)) FROM item").fetchone()[0], db.total_changes >= 0)
