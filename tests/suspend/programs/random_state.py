import random

random.seed(1234)
rng = random.Random(99)
for i in range(25):
    print(i, random.randint(0, 1000), rng.random())
