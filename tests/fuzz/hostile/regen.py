"""Writes the hostile fuzz seeds tests/fuzz/hostile/*.ops: the op streams of the crafted files of
issue 18's findings (tests/format/test_hostile*.py), as the fuzzers' starting points near every
defence. They are raw op streams, not snapshot files: loads_fuzz wraps any input that is not a
snapshot file in a fresh, valid container, so these never go stale with the preamble or the
container (they are committed; rerun with build/bin/python when an op changes its operands)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "format"))
from craft import (ADD_ITEMS, APPENDS, BUILD, CLASS, CLASS_STATE, DICT_ITEMS, EMPTY_DICT,  # noqa: E402
                   EMPTY_LIST, EMPTY_SET, FUNCTION, FUNCTION_STATE, GENERATOR, GENERATOR_FRAME,
                   LIST_ITEMS, MEMO, NEW_OBJ, NONE, REDUCE, REGISTERED, SET_ITEMS, SET_LAYOUT, TUPLE,
                   WEAK_REF, Ops, code_fields, environ_gadget, function_of, instance, klass,
                   ops_of_code, partial_of)


def f():
    return 1


def g(n):
    for i in range(n):
        yield i


def h(n):
    try:
        yield n
    finally:
        pass


def d(x):
    yield from x


def yield_at(f) -> int:
    import dis
    return next(i.offset // 2 for i in dis.get_instructions(f) if i.opname == "YIELD_VALUE")


def seeds():
    garbage = list(code_fields(f.__code__))
    garbage[5] |= 0x20
    garbage[6] = bytes([100, 0xFF]) * 4 + bytes([83, 0])
    plain = list(code_fields(f.__code__))
    plain[5] |= 0x20
    gen = ops_of_code(code_fields(g.__code__)).module("builtins").str("g").str("g").op(NONE).op(FUNCTION)
    yield "additems_wrap", Ops().op(EMPTY_SET).op(ADD_ITEMS, 2**64 - 1)
    yield "garbage_generator", ops_of_code(garbage).module("builtins").str("f").str("f").op(NONE).op(FUNCTION).op(GENERATOR)
    yield "flagged_generator", ops_of_code(plain).module("builtins").str("f").str("f").op(NONE).op(FUNCTION).op(GENERATOR)
    yield "generator", Ops().raw(gen.bytes()).op(GENERATOR)
    yield "listitems_append", (Ops().global_("argparse", "Namespace").op(TUPLE, 0).op(NEW_OBJ).op(EMPTY_DICT)
                               .str("append").global_("posix", "system").op(SET_ITEMS, 1).op(BUILD)
                               .str("true").op(LIST_ITEMS, 1))
    yield "popen", Ops().global_("subprocess", "Popen").value((["true"],)).op(REDUCE)
    yield "partial_popen", (Ops().global_("functools", "partial").global_("subprocess", "Popen")
                            .value(["true"]).op(TUPLE, 2).op(REDUCE).op(TUPLE, 0).op(REDUCE))
    yield "build_builtins", Ops().module("builtins").value({"len": None}).op(BUILD)
    yield "environ", (Ops().global_("builtins", "getattr").module("os").str("environ").op(TUPLE, 2)
                      .op(REDUCE).str("K").str("V").op(DICT_ITEMS, 1))
    yield "classstate", Ops().global_("json", "JSONEncoder").value({"x": 1}).op(CLASS_STATE)
    yield "functionstate", (Ops().global_("os", "makedirs").op(NONE).op(NONE).op(NONE).op(NONE).op(NONE)
                            .str("os").op(FUNCTION_STATE))
    yield "setlayout", Ops().op(EMPTY_SET).op(SET_LAYOUT, 2**30 - 1, 0, 0, 0)
    yield "memo_flood", Ops().op(NONE).raw(bytes([MEMO]) * 64)
    yield "tempfile_closer", (Ops().global_("tempfile", "_TemporaryFileCloser").op(TUPLE, 0).op(NEW_OBJ)
                              .value({"file": None, "name": "/nonexistent", "delete": True}).op(BUILD))
    yield "weakref_callback", Ops().op(EMPTY_SET).raw(gen.bytes()).op(WEAK_REF)
    yield "class_by_value", (Ops().global_("builtins", "type").str("C").op(TUPLE, 0).op(EMPTY_DICT)
                             .str("__module__").str("x").op(SET_ITEMS, 1).op(CLASS).op(MEMO)
                             .op(EMPTY_DICT).str("__hash__").global_("posix", "system").op(SET_ITEMS, 1)
                             .op(CLASS_STATE))
    # issue 18, red team (tests/format/test_hostile_gadgets.py, test_hostile_handlers.py)
    yield "environ_setitem", environ_gadget(Ops(), "v", via="encodekey").str("true").str("v").op(DICT_ITEMS, 1)
    yield "environ_repr", (environ_gadget(Ops().global_("builtins", "str").op(EMPTY_LIST), "true")
                           .op(APPENDS, 1).op(TUPLE, 1).op(REDUCE))
    yield "partial_dict", (instance(Ops().global_("functools", "partial").global_("builtins", "dict"), "argparse",
                                    "Namespace", {"keys": lambda o: partial_of(o, "posix", "system", "true")})
                           .op(TUPLE, 2).op(REDUCE).op(TUPLE, 0).op(REDUCE))
    yield "class_append_popen", (klass(Ops(), "C", attrs={"append": lambda o: o.global_("subprocess", "Popen")})
                                 .op(TUPLE, 0).op(NEW_OBJ).value(["true"]).op(LIST_ITEMS, 1))
    yield "enum_missing", klass(Ops(), "E", [("enum", "Enum")], {"A": 1, "_missing_": lambda o: o.global_(
        "builtins", "staticmethod").global_("subprocess", "Popen").op(TUPLE, 1).op(REDUCE)}, meta=("enum", "EnumType"))
    yield "fraction_exponent", Ops().global_("fractions", "Fraction").value(("1e100000000",)).op(REDUCE)
    yield "generator_finally", (function_of(Ops(), h.__code__, "h").op(GENERATOR).op(NONE).op(TUPLE, 1).value(0)
                                .op(TUPLE, 0).value(yield_at(h)).value(-1).op(GENERATOR_FRAME))
    yield "generator_delegate", (instance(function_of(Ops(), d.__code__, "d").op(GENERATOR).op(NONE).op(TUPLE, 1)
                                          .value(0), "argparse", "Namespace", {"close": 1})
                                 .op(TUPLE, 1).value(yield_at(d)).value(-1).op(GENERATOR_FRAME))
    yield "handler_asend", (instance(Ops().str("stasis.asend"), "argparse", "Namespace", {"asend": 1})
                            .str("x").op(TUPLE, 2).op(REGISTERED))
    yield "handler_rlock", Ops().str("stasis.rlock").value((0, 10**15)).op(REGISTERED)


if __name__ == "__main__":
    for name, ops in seeds():
        path = os.path.join(HERE, name + ".ops")
        with open(path, "wb") as out:
            out.write(ops.bytes())
        print("wrote", path)
