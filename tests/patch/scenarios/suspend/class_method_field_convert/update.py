import stasis.update


def to_cents(account):
    account.balance = round(account.balance * 100)


stasis.update.convert("__main__.Account", to_cents)
stasis.update.add_field("__main__.Account.history", lambda a: [])
