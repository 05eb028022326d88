"""A SQLite database file, re-opened by its path on resume with the connection's settings; the
program reads its rows through a cursor while it writes a second table (autocommit)."""
import os
import sqlite3

if os.path.exists("store.db"):
    os.unlink("store.db")
db = sqlite3.connect("store.db", isolation_level=None)
db.execute("PRAGMA foreign_keys = ON")
db.text_factory = lambda b: b.decode("utf-8").upper()
db.executescript("""
    CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE visit (city INTEGER REFERENCES city(id), n INTEGER);
""")
db.executemany("INSERT INTO city (name) VALUES (?)", [(f"city{i}",) for i in range(15)])
cities = db.cursor()
cities.execute("SELECT id, name FROM city ORDER BY id")
for step in range(12):
    cid, name = cities.fetchone()
    db.execute("INSERT INTO visit VALUES (?, ?)", (cid, step * step))
    try:
        db.execute("INSERT INTO visit VALUES (999, 0)")  # foreign keys still enforced after resume
    except sqlite3.IntegrityError as e:
        refused = str(e)
    print(step, cid, name, db.execute("SELECT count(*), sum(n) FROM visit").fetchone(), refused,
          db.isolation_level)
print(cities.fetchmany(2), db.execute("PRAGMA foreign_keys").fetchone())
