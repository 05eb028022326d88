"""The product/site program of the PyMoult paper, in our own words: two threads (a command server
on a loopback socket and a restocking worker) and two classes (Product, Site). One update adds
ratings: Product instances are converted lazily (on first attribute access), the Site eagerly,
the Product class and the command handler are redefined in place — while both threads run."""
from __future__ import annotations

import socket
import unittest

from tests.updater.support import TargetTestCase

SHOP = '''
import socket, sys, threading, time, stasis

class Product:
    def __init__(self, name, price):
        self.name = name
        self.price = price
        self.stock = 0

    def describe(self):
        return f"{self.name} price={self.price} stock>0={self.stock > 0}"

class Site:
    def __init__(self, title):
        self.title = title
        self.products = {}
        self.sales = 0

SITE = Site("corner shop")
for name, price in [("apple", 3), ("pear", 4), ("fig", 9)]:
    SITE.products[name] = Product(name, price)
RESTOCKED = ["apple"]          # the worker only ever touches these

def restock():
    while True:
        for name in RESTOCKED:
            SITE.products[name].stock += 1
        time.sleep(0.005)

def handle_command(words):
    if words[0] == "show":
        return SITE.products[words[1]].describe()
    if words[0] == "buy":
        p = SITE.products[words[1]]
        p.stock -= 1
        SITE.sales += 1
        return "sold"
    if words[0] == "site":
        return f"{SITE.title} sales={SITE.sales}"
    if words[0] == "class":       # is the instance's class exactly Product (not a pending conversion)?
        return str(type(SITE.products[words[1]]) is Product)
    return "unknown command"

def serve(listener):
    while True:
        conn, _ = listener.accept()
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    answer = handle_command(line.split())
                except Exception as e:
                    answer = f"error {type(e).__name__}: {e}"
                f.write(answer + "\\n")
                f.flush()

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
threading.Thread(target=restock, daemon=True, name="restock").start()
threading.Thread(target=serve, args=(listener,), daemon=True, name="commands").start()
stasis.serve_updates()
print(listener.getsockname()[1], flush=True)
sys.stdin.read()
'''

RATINGS = '''
from stasis.update import convert, redefine
from __main__ import SITE

class Product:
    def __init__(self, name, price):
        self.name = name
        self.price = price
        self.stock = 0
        self.ratings = []

    def describe(self):
        avg = f"{sum(self.ratings) / len(self.ratings):.1f}" if self.ratings else "-"
        return f"{self.name} price={self.price} stock>0={self.stock > 0} rating={avg}"

    def rate(self, stars):
        self.ratings.append(stars)
        SITE.ratings_given += 1

def give_ratings(product):            # Product instances: converted on first use (lazy)
    product.ratings = []

def count_ratings(site):              # the Site: converted at once (eager)
    site.ratings_given = 0

def handle_command(words):
    if words[0] == "rate":
        SITE.products[words[1]].rate(int(words[2]))
        return "rated"
    if words[0] == "show":
        return SITE.products[words[1]].describe()
    if words[0] == "buy":
        p = SITE.products[words[1]]
        p.stock -= 1
        SITE.sales += 1
        return "sold"
    if words[0] == "site":
        return f"{SITE.title} sales={SITE.sales} ratings={SITE.ratings_given}"
    if words[0] == "class":
        return str(type(SITE.products[words[1]]) is Product)
    return "unknown command"

redefine("__main__.Product", Product)
convert("__main__.Product", give_ratings, lazy=True)
convert("__main__.Site", count_ratings, lazy=False)
redefine("__main__.handle_command", handle_command)
'''


class PyMoultShopTest(TargetTestCase):
    def test_ratings_update_with_lazy_and_eager_conversion(self) -> None:
        proc, port = self.start("shop.py", SHOP)
        with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as s, s.makefile("rw") as f:
            def ask(command: str) -> str:
                f.write(command + "\n")
                f.flush()
                return f.readline().strip()

            self.assertEqual(ask("show pear"), "pear price=4 stock>0=False")
            self.assertEqual(ask("rate pear 5"), "unknown command")
            self.assertEqual(ask("buy fig"), "sold")
            _, out, _ = self.ctl(proc.pid, "apply", self.write("ratings.py", RATINGS))
            self.assertIn("update 1 applied", out)
            self.assertEqual(ask("site"), "corner shop sales=1 ratings=0")       # eager: converted already
            self.assertEqual(ask("class pear"), "False")                        # lazy: not touched yet
            self.assertEqual(ask("show pear"), "pear price=4 stock>0=False rating=-")
            self.assertEqual(ask("class pear"), "True")                         # converted on first use
            self.assertEqual(ask("rate pear 4"), "rated")
            self.assertEqual(ask("rate pear 5"), "rated")
            self.assertEqual(ask("show pear"), "pear price=4 stock>0=False rating=4.5")
            self.assertEqual(ask("show apple"), "apple price=3 stock>0=True rating=-")   # restocked meanwhile
            self.assertEqual(ask("buy fig"), "sold")
            self.assertEqual(ask("site"), "corner shop sales=2 ratings=2")
            _, listing, _ = self.ctl(proc.pid, "list")
            self.assertIn("(not revertible)", listing)                          # converts without undo=
            _, _, err = self.ctl(proc.pid, "revert", "1", expect=102)
            self.assertIn("has no undo= function", err)


if __name__ == "__main__":
    unittest.main()
