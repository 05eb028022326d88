class Account:
    rate = 0.5

    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance

    def deposit(self, amount):
        self.balance += amount
        return self.balance

    def interest(self):
        return self.balance * self.rate


class Savings(Account):
    rate = 1.5

    def interest(self):
        base = super().interest()
        return base + 1


accounts = [Account("a", 10), Savings("b", 20)]
for month in range(8):
    for acc in accounts:
        acc.deposit(month)
        print(month, acc.owner, acc.balance, acc.interest())
