print("open people")
print("added ann|31")
print("close people 1 rows error")    # the crashed run unwinds through __exit__
print("added bob|42")                 # the resumed run goes on inside the block
print("added cy|19")
print("close people 3 rows ok")
print("exported")
