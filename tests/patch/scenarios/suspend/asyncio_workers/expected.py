# The suspension takes effect at the end of the task step in which stasis.suspend() was called:
# by then w0 has taken "kl" and started score("kl"), and w1 is awaiting score("ghij") -- both
# coroutines already made, so they finish on the old code; only score("mnopq") runs the new one.
print("w0 ab 2")
print("w1 cde 3")
print("w0 f 1")
print("w1 ghij 4")
print("w0 kl 2")
print("w1 mnopq 500")
print("total", 2 + 3 + 1 + 4 + 2 + 500)
