// restore/code_verifier.h — checks a code object from a snapshot before anything can run it.
// CPython trusts bytecode: a code object made by types.CodeType from arbitrary bytes can read
// and write outside its frame (an oparg past co_consts, a value stack deeper than co_stacksize,
// LOAD_DEREF on a slot that holds no cell, FOR_ITER on a non-iterator, YIELD_VALUE outside a
// generator frame...). The verifier accepts only what it can prove safe for CPython 3.11's eval
// loop (Python/ceval.c) and refuses the rest:
//   - base opcodes only (no specialised or unknown ones), zero inline caches, EXTENDED_ARG only as
//     a prefix; every oparg in range (consts, names, local slots of the right kind, jump targets
//     on instruction starts, comparison and binary operators, SWAP/COPY depths);
//   - the value stack, followed through every path and exception handler, never below empty nor
//     above co_stacksize, with the same depth wherever paths meet; values typed enough that no
//     instruction meets what it does not check for (NULL, an iterator, a list/set/dict being
//     built, an exception, a cell, a constant code object with matching free variables);
//   - the frame prefix (COPY_FREE_VARS, a MAKE_CELL for every cell, RETURN_GENERATOR) present and
//     consistent with co_flags, and never re-entered; YIELD_VALUE only in generator code;
//   - the exception table and the location table well formed and within the code.
// Code objects the compiler makes pass: tests/format/test_hostile.py checks every code object of
// the standard library and its test suite (73,178 of them). One construct is refused: `except*`
// (RERAISE takes what PREP_RERAISE_STAR picks from a list the code filled, which the verifier
// cannot show to hold only exceptions).
#pragma once

#include <Python.h>

#include <string>

namespace stasis::restore {

// "" when `code` is safe to run, else why not (one line).
std::string verify_code(PyCodeObject* code);

// Whether `code` is a generator, coroutine or async generator code object whose frame prefix
// ends with RETURN_GENERATOR (calling its function then runs only that prefix). Only meaningful
// for a code object verify_code accepted.
bool has_generator_prefix(PyCodeObject* code);

// "" when `stack` (a tuple) can stand as the value stack of `code` at instruction `index` (code
// units) — as the saved stack of a generator suspended at a YIELD_VALUE (`after_yield`: the
// stack below the yielded value) or of a frame replay resumes there — else why not. Every value
// must be of the kind the instructions that follow expect (an iterator where FOR_ITER runs...).
std::string check_stack_at(PyCodeObject* code, int index, PyObject* stack, bool after_yield);

// The local slot that must hold an iterator (a comprehension's ".0" argument), or -1.
int iterator_argument(PyCodeObject* code);

// Whether `index` (code units) is the start of an instruction (not a cache entry, not inside an
// EXTENDED_ARG sequence).
bool is_instruction_start(PyCodeObject* code, int index);

}  // namespace stasis::restore
