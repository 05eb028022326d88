// core/allowlist.h — THE lists of what loading a snapshot may import and call (FORMAT.md, "What
// loading may import and call"). Read by the writer (snapshot/object_encoder.cpp refuses to write
// a call that loading would refuse, so every snapshot written can be loaded) and by the reader
// (restore/object_decoder.cpp, restore/global_decoder.cpp), so the two cannot disagree.
#pragma once

#include <Python.h>

#include <string>
#include <string_view>

namespace stasis::allowlist {

struct Name {
  const char* module;
  const char* qualname;
};

// Library packages whose import runs outside the load's effect guard (restore/effect_guard.h):
// their import-time effects are their own, the same whenever they are imported, and trip the
// guard (pandas starts a subprocess and opens /dev/null read-write; numpy sets environment
// variables). A snapshot chooses only whether they are imported, as pickle would import them.
inline constexpr const char* kUnguardedImports[] = {"numpy", "pandas", "pytz", "dateutil"};

// Whether importing `module` runs outside the effect guard (its top-level package is listed above).
inline bool unguarded_import(std::string_view module) {
  std::string_view top = module.substr(0, module.find('.'));
  for (const char* p : kUnguardedImports)
    if (top == p) return true;
  return false;
}

// The reconstructors a Reduce op may call besides classes. Each one's arguments are checked
// (reduce_refusal): nothing else is ever called through them.
inline constexpr Name kReducers[] = {
    {"copyreg", "_reconstructor"},      // copyreg.__reduce_ex__ of protocol < 2 objects
    {"builtins", "getattr"},            // bound builtin methods, enum-like attributes
    {"builtins", "iter"},               // builtin iterators (list/tuple/str/bytes/dict/set)
    {"re", "_compile"},                 // re.Pattern
    {"array", "_array_reconstructor"},  // array.array
    {"copyreg", "__newobj_ex__"},       // cls.__new__(cls, *args, **kwargs): run as NewObj (version 7)
};

// How a value type's constructor treats its arguments.
enum class Args {
  Stores,    // keeps them (range, partial, map...): any object may be passed
  Consumes,  // iterates or converts them (deque, Counter, Decimal...): each argument must be a
             // value of an exact built-in type (int, str, bytes, tuple, list, dict, set...), so
             // the constructor runs no code but the interpreter's own
  FirstStored,  // keeps its first argument and consumes the others (defaultdict(factory, items))
};

struct ValueType {
  const char* module;
  const char* qualname;
  Args args;
};

// The classes a Reduce op may call (besides exception classes, Enum classes and, in a program's
// own snapshot, the program's classes): value types whose construction has no effect beyond the
// new object — no file, process, socket, thread or module is touched. `subprocess.Popen`, `open`,
// `socket.socket` and every class not listed here are refused.
inline constexpr ValueType kValueTypes[] = {
    {"builtins", "object", Args::Stores},
    {"builtins", "int", Args::Consumes},
    {"builtins", "float", Args::Consumes},
    {"builtins", "complex", Args::Consumes},
    {"builtins", "bool", Args::Consumes},
    {"builtins", "str", Args::Consumes},
    {"builtins", "bytes", Args::Consumes},
    {"builtins", "bytearray", Args::Consumes},
    {"builtins", "tuple", Args::Consumes},
    {"builtins", "list", Args::Consumes},
    {"builtins", "dict", Args::Consumes},
    {"builtins", "set", Args::Consumes},
    {"builtins", "frozenset", Args::Consumes},
    {"builtins", "range", Args::Stores},
    {"builtins", "slice", Args::Stores},
    {"builtins", "memoryview", Args::Stores},
    {"builtins", "staticmethod", Args::Stores},
    {"builtins", "classmethod", Args::Stores},
    {"builtins", "property", Args::Stores},
    {"types", "MethodType", Args::Stores},
    {"types", "MappingProxyType", Args::Stores},
    {"types", "SimpleNamespace", Args::Stores},
    {"types", "GenericAlias", Args::Stores},
    {"builtins", "map", Args::Stores},
    {"builtins", "filter", Args::Stores},
    {"builtins", "zip", Args::Stores},
    {"builtins", "enumerate", Args::Stores},
    {"builtins", "reversed", Args::Stores},
    {"itertools", "count", Args::Stores},
    {"itertools", "cycle", Args::Stores},
    {"itertools", "repeat", Args::Stores},
    {"itertools", "chain", Args::Stores},
    {"itertools", "islice", Args::Stores},
    {"itertools", "accumulate", Args::Stores},
    {"itertools", "starmap", Args::Stores},
    {"itertools", "compress", Args::Stores},
    {"itertools", "dropwhile", Args::Stores},
    {"itertools", "takewhile", Args::Stores},
    {"itertools", "filterfalse", Args::Stores},
    {"itertools", "groupby", Args::Stores},
    {"itertools", "zip_longest", Args::Stores},
    {"itertools", "product", Args::Consumes},
    {"itertools", "permutations", Args::Consumes},
    {"itertools", "combinations", Args::Consumes},
    {"itertools", "combinations_with_replacement", Args::Consumes},
    {"functools", "partial", Args::Stores},
    {"operator", "attrgetter", Args::Consumes},
    {"operator", "itemgetter", Args::Stores},
    {"operator", "methodcaller", Args::Consumes},
    {"collections", "OrderedDict", Args::Consumes},
    {"collections", "defaultdict", Args::FirstStored},
    {"collections", "deque", Args::Consumes},
    {"collections", "Counter", Args::Consumes},
    {"collections", "_tuplegetter", Args::Stores},
    {"decimal", "Decimal", Args::Consumes},
    {"decimal", "Context", Args::Consumes},
    {"fractions", "Fraction", Args::Consumes},
    {"datetime", "date", Args::Stores},
    {"datetime", "time", Args::Stores},
    {"datetime", "datetime", Args::Stores},
    {"datetime", "timedelta", Args::Consumes},
    {"datetime", "timezone", Args::Stores},
    {"pathlib", "PurePath", Args::Consumes},
    {"pathlib", "PurePosixPath", Args::Consumes},
    {"pathlib", "PureWindowsPath", Args::Consumes},
    {"pathlib", "Path", Args::Consumes},
    {"pathlib", "PosixPath", Args::Consumes},
    {"pathlib", "WindowsPath", Args::Consumes},
    {"ipaddress", "IPv4Address", Args::Consumes},
    {"ipaddress", "IPv6Address", Args::Consumes},
    {"ipaddress", "IPv4Network", Args::Consumes},
    {"ipaddress", "IPv6Network", Args::Consumes},
    {"ipaddress", "IPv4Interface", Args::Consumes},
    {"ipaddress", "IPv6Interface", Args::Consumes},
    {"random", "Random", Args::Stores},
};

// Modules that loading never imports: importing them has effects of its own (a browser opened,
// text printed, a test suite or a tool run). Besides these, a dotted name with a `__main__` part
// other than `__main__` itself (`json.__main__`, `venv.__main__`) is refused.
// A name is refused with all its submodules (`test` covers `test.autotest`, which runs the test
// suite when imported).
inline constexpr const char* kRefusedModules[] = {
    "antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo", "test",
};

// Why loading refuses to import `module` (a dotted name), or "" when it may. A program snapshot
// (`program`) may import CPython's `test` package (its __init__ is empty) and its modules except
// test.autotest: a
// program that runs CPython's tests (`python -m unittest test.test_x` under a quota) imported
// them itself, and importing them runs no test.
std::string import_refusal(std::string_view module, bool program = false);

// The syntax-tree node classes of module `_ast` (ast.Module, ast.Name, ..., ast.AST itself) are
// value types too: a node reduces to its class called without arguments (which sets nothing) and
// its fields as state. Their subclasses made by a program are not (their __init__ is its code).
inline constexpr ValueType kAstNode = {"ast", "AST", Args::Consumes};

// The kind of constructor call Reduce may make with `cls` (a class), or nullptr when `cls` is not
// a value type: the classes of kValueTypes and the node classes of `_ast` (resolved once; their
// subclasses are not included).
const ValueType* value_type(PyObject* cls);
// Whether `callable` is one of kReducers (resolved once).
bool is_reducer(PyObject* callable);
// Which reducer `callable` is (its qualname), or nullptr.
const char* reducer_name(PyObject* callable);

// Whether a Reduce op may call `callable` with `args` in any snapshot: a reducer with arguments
// it accepts, a value type (with plain arguments when it consumes them), an exception class, an
// Enum class, functools.partial of a value type (operator.methodcaller reduces to one), or
// operator.getitem of a typing object. Returns "" when allowed, else why not (one line).
// Classes built by the snapshot itself are the reader's business (restore/object_decoder.cpp).
std::string reduce_refusal(PyObject* callable, PyObject* args);

// Whether loading may call the class `cls` with any arguments a class statement's attribute could
// be called with: a value type that keeps its arguments (Args::Stores), an exception class or an
// Enum class. (A value type that consumes its arguments is not: dict(x) calls x.keys().)
bool callable_class(PyObject* cls);

// Whether `obj` is a value of an exact built-in data type (None, bool, int, float, complex, str,
// bytes, bytearray, tuple, list, dict, set, frozenset): what a consuming value type's constructor
// may be given (not a range: list(range(10**12)) would allocate what no byte justifies).
bool is_plain_value(PyObject* obj);

}  // namespace stasis::allowlist
