"""A JSON decoder (json's C scanner) kept across suspensions, and objects whose pickling asks for
cls.__new__(cls, *args, **kwargs) (copyreg.__newobj_ex__ with keywords, as sympy.Symbol does)."""
import json


class Symbol:
    def __new__(cls, name, **assumptions):
        self = object.__new__(cls)
        self.name, self.assumptions = name, assumptions
        return self

    def __getnewargs_ex__(self):
        return (self.name,), self.assumptions

    def __repr__(self):
        return f"{self.name}{sorted(self.assumptions.items())}"


decoder = json.JSONDecoder(object_hook=lambda d: {k.upper(): v for k, v in d.items()}, parse_float=str)
scan = decoder.scan_once
symbols = [Symbol("x", real=True), Symbol("y", positive=True, integer=True)]
for step in range(40):
    doc = decoder.decode(json.dumps({"step": step, "half": step / 2, "tags": ["a", step]}))
    value, end = scan(f'[{step}, {step}.5]', 0)
    if step % 10 == 0:
        symbols.append(Symbol(f"s{step}", odd=bool(step % 3)))
    print(step, doc, value, end, symbols[-1])
