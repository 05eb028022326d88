"""Function-call-heavy workloads for bench/updater/run.py (plain Python, no Stasis imports).

`calls_*` profile targets: a tiny expression tokenizer/parser/evaluator and a template renderer,
built from many small functions (the shape of real application code), plus `fib`/`add` as the
worst case (functions doing almost nothing but calls). `other_*` live in another module and are
never profiled: they measure the cost imposed on code outside the pattern."""
from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:(\d+)|(.))")


def tokenize(text):
    out = []
    for number, op in _TOKEN.findall(text):
        out.append(make_token(number, op))
    return out


def make_token(number, op):
    if number:
        return ("num", int(number))
    return ("op", op)


def parse_expr(tokens, pos):
    value, pos = parse_term(tokens, pos)
    while pos < len(tokens) and tokens[pos][1] in "+-":
        op = tokens[pos][1]
        rhs, pos = parse_term(tokens, pos + 1)
        value = apply_op(op, value, rhs)
    return value, pos


def parse_term(tokens, pos):
    value, pos = parse_atom(tokens, pos)
    while pos < len(tokens) and tokens[pos][1] in "*/":
        op = tokens[pos][1]
        rhs, pos = parse_atom(tokens, pos + 1)
        value = apply_op(op, value, rhs)
    return value, pos


def parse_atom(tokens, pos):
    kind, value = tokens[pos]
    if kind == "num":
        return value, pos + 1
    if value == "(":
        value, pos = parse_expr(tokens, pos + 1)
        return value, pos + 1
    raise SyntaxError(value)


def apply_op(op, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a // b if b else 0


def evaluate(text):
    return parse_expr(tokenize(text), 0)[0]


def render(template, context):
    return "".join(render_part(part, context) for part in split_template(template))


def split_template(template):
    return template.replace("}}", "{{").split("{{")


def render_part(part, context):
    key = part.strip()
    if key in context:
        return escape(str(context[key]))
    return part


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fib(n):
    return n if n < 2 else add(fib(n - 1), fib(n - 2))


def add(a, b):
    return a + b


EXPRESSIONS = ["1 + 2 * (3 + 4) - 5", "(1 + 2) * (3 + 4) * (5 - 6)", "10 / 2 + 3 * 7 - (8 - 2)"]
TEMPLATE = "<p>{{ name }} has {{ count }} items in {{ place }} & more</p>"


def realistic(rounds=3000):
    total = 0
    for i in range(rounds):
        total += evaluate(EXPRESSIONS[i % 3])
        total += len(render(TEMPLATE, {"name": "ann", "count": i, "place": "<b>"}))
    return total


def trivial(n=21):
    return fib(n)
