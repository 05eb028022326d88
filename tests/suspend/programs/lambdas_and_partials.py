import functools
import operator

ops = [lambda x: x + 1, functools.partial(operator.mul, 3), operator.itemgetter(0)]
value = [5]
for i in range(9):
    op = ops[i % 3]
    arg = value if op is ops[2] else value[0]
    value = [op(arg) if not isinstance(op(arg), list) else op(arg)[0]]
    print(i, value)
