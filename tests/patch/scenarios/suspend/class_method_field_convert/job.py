# A bank ledger: accounts are live instances; the interest method changes, accounts gain a
# `history` field and their balance is converted from floats to integer cents.
import stasis


class Account:
    rate = 0.5

    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance

    def interest(self):
        return self.balance * self.rate / 100

    def show(self):
        return f"{self.owner:5} {self.balance:10.2f}"


ACCOUNTS = [Account("ann", 100.0), Account("bob", 2500.0), Account("cyd", 40.0)]


def month(n):
    for a in ACCOUNTS:
        a.balance += a.interest()
        print(n, a.show())


for n in range(1, 5):
    month(n)
    if n == 2:
        stasis.suspend()
print("end", [a.owner for a in ACCOUNTS])
