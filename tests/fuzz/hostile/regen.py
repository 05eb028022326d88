"""Writes the hostile fuzz seeds tests/fuzz/hostile/*.snap: the crafted files of issue 18's
findings (tests/format/test_hostile.py), as the fuzzers' starting points near every defence.
Run with build/bin/python after a format-version bump."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "format"))
from craft import (ADD_ITEMS, BUILD, CLASS, CLASS_STATE, DICT_ITEMS, EMPTY_DICT, EMPTY_SET,  # noqa: E402
                   FUNCTION, FUNCTION_STATE, GENERATOR, LIST_ITEMS, MEMO, NEW_OBJ, NONE, REDUCE,
                   SET_ITEMS, SET_LAYOUT, TUPLE, WEAK_REF, Ops, code_fields, ops_of_code, snapshot)


def f():
    return 1


def g(n):
    for i in range(n):
        yield i


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


if __name__ == "__main__":
    for name, ops in seeds():
        path = os.path.join(HERE, name + ".snap")
        with open(path, "wb") as out:
            out.write(snapshot(ops))
        print("wrote", path)
