"""Two versions of a module's source, compared by block structure (not by line numbers): which
functions and classes they share, which are new or gone, and, inside a function, which statement
of the new version corresponds to a statement of the old one. Used by snapshot_patch.py (what a
`--source` patch changes) and frame_map.py (where a suspended frame continues).

Statements are matched list by list (a function body, a loop body, an `else:` ...): definitions by
name, other statements by difflib over their contents, compound statements by their header (so a
loop whose body changed still corresponds to the old loop). Paths are the rewriter's: a site id
such as "body[3].body[1].body[0].value.left" is a path from the module root
(compiler_hooks/rewriter.py assign_site_ids)."""
from __future__ import annotations

import ast
import difflib
import types
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

Step = Tuple[str, Optional[int]]          # (field, index) of one step of a path
DefNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module]

COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.Match,
            getattr(ast, "TryStar", ast.Try))
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Compound statements whose header leaves a value on the stack for its whole body (the loop
# iterator, the bound __exit__): a frame inside one whose header changed cannot carry that value.
STRUCTURAL_HEADERS = (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)


def dump(node: Optional[ast.AST]) -> str:
    return "" if node is None else ast.dump(node, include_attributes=False)


# --- paths ---------------------------------------------------------------------------------------

def parse_path(path: str) -> List[Step]:
    steps: List[Step] = []
    for part in path.split(".") if path else []:
        if part.endswith("]"):
            field, _, index = part[:-1].partition("[")
            steps.append((field, int(index)))
        else:
            steps.append((part, None))
    return steps


def format_path(steps: List[Step]) -> str:
    return ".".join(f"{f}[{i}]" if i is not None else f for f, i in steps)


def follow(node: ast.AST, steps: List[Step]) -> ast.AST:
    for field, index in steps:
        value = getattr(node, field)
        node = value[index] if index is not None else value
    return node


# --- definitions ---------------------------------------------------------------------------------

@dataclass
class Definition:
    """A function or class of a module (or the module itself: qualname "<module>")."""
    qualname: str
    node: DefNode
    path: List[Step]                  # from the module root ([] for the module)
    firstlineno: int                  # co_firstlineno of its code (first decorator's line)

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)


def definitions(tree: ast.Module) -> Dict[str, Definition]:
    """Every def and class of the module by qualname as CPython spells it (f.<locals>.g, C.m).
    A qualname defined twice keeps its last definition (the one a module run leaves bound)."""
    out: Dict[str, Definition] = {"<module>": Definition("<module>", tree, [], 1)}

    def walk(node: ast.AST, path: List[Step], prefix: str) -> None:
        for field, value in ast.iter_fields(node):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if not isinstance(item, ast.AST):
                    continue
                step = (field, i if isinstance(value, list) else None)
                if isinstance(item, DEFS):
                    q = prefix + item.name
                    first = item.decorator_list[0].lineno if item.decorator_list else item.lineno
                    out[q] = Definition(q, item, path + [step], first)
                    inner = q + "." if isinstance(item, ast.ClassDef) else q + ".<locals>."
                    walk(item, path + [step], inner)
                elif not isinstance(item, ast.Lambda):
                    walk(item, path + [step], prefix)
    walk(tree, [], "")
    return out


def code_tree(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from code_tree(c)


def codes_by_definition(module_code: types.CodeType, defs: Dict[str, Definition]) -> Dict[str, types.CodeType]:
    """{qualname: code object} of the definitions compiled into `module_code` (classes: their body)."""
    out: Dict[str, types.CodeType] = {}
    for c in code_tree(module_code):
        q = "<module>" if c.co_name == "<module>" else c.co_qualname
        d = defs.get(q)
        if d is not None and (q == "<module>" or c.co_firstlineno == d.firstlineno):
            out[q] = c
    return out


def find_definition(defs: Dict[str, Definition], code: types.CodeType) -> Optional[Definition]:
    q = "<module>" if code.co_name == "<module>" else code.co_qualname
    d = defs.get(q)
    if d is None or (q != "<module>" and d.firstlineno != code.co_firstlineno):
        return None
    return d


# --- statement matching --------------------------------------------------------------------------

def header(s: ast.stmt) -> str:
    if isinstance(s, DEFS):
        return f"{type(s).__name__} {s.name}"
    if isinstance(s, (ast.For, ast.AsyncFor)):
        return f"{type(s).__name__} {dump(s.target)} {dump(s.iter)}"
    if isinstance(s, (ast.While, ast.If)):
        return f"{type(s).__name__} {dump(s.test)}"
    if isinstance(s, (ast.With, ast.AsyncWith)):
        return f"{type(s).__name__} {[dump(i) for i in s.items]}"
    if isinstance(s, ast.Match):
        return f"Match {dump(s.subject)}"
    if isinstance(s, COMPOUND):   # try
        return f"{type(s).__name__} {[dump(h.type) for h in s.handlers]} {bool(s.orelse)} {bool(s.finalbody)}"
    return dump(s)


@dataclass
class Pairing:
    new_index: Optional[int]          # None: the old statement has no counterpart (deleted)
    same: bool                        # the two statements are identical (positions aside)
    why: str = ""                     # when new_index is None: why


def match_statements(old: List[ast.stmt], new: List[ast.stmt]) -> List[Pairing]:
    """For each old statement, its counterpart in `new`: identical statements and compound
    statements with the same header correspond in order (difflib); a run of old statements
    replaced by a run of new ones corresponds one to one when the runs are as long, else only
    their first statements do; deleted statements have none."""
    a, b = [header(s) for s in old], [header(s) for s in new]
    out: List[Pairing] = [Pairing(None, False, "its statement was deleted") for _ in old]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                out[i1 + k] = Pairing(j1 + k, dump(old[i1 + k]) == dump(new[j1 + k]))
        elif tag == "replace":
            if i2 - i1 == j2 - j1:
                for k in range(i2 - i1):
                    out[i1 + k] = Pairing(j1 + k, False)
            else:
                out[i1] = Pairing(j1, False)
                for k in range(i1 + 1, i2):
                    out[k] = Pairing(None, False, f"its statement was replaced together with the one at line "
                                                  f"{old[i1].lineno} by {j2 - j1} statement(s)")
    # Definitions moved elsewhere in the same block still correspond, by name.
    by_name = {s.name: j for j, s in enumerate(new) if isinstance(s, DEFS)}
    for i, s in enumerate(old):
        if out[i].new_index is None and isinstance(s, DEFS) and s.name in by_name:
            j = by_name[s.name]
            out[i] = Pairing(j, dump(s) == dump(new[j]))
    return out


@dataclass
class StatementMatch:
    """Where an old statement is in the new version of its function."""
    new_path: Optional[List[Step]]    # None: no counterpart
    same: bool                        # identical statement, and every enclosing header identical
    why: str = ""


def inserted_before(pairs: List[Pairing], new_index: int) -> int:
    """The first of the new statements that come right before `new_index` in its block and have no
    old counterpart (inserted in front of it), else `new_index` itself."""
    matched = {p.new_index for p in pairs if p.new_index is not None}
    j = new_index
    while j > 0 and j - 1 not in matched:
        j -= 1
    return j


def match_statement(old_def: DefNode, new_def: DefNode, steps: List[Step], run_inserted: bool = False) -> StatementMatch:
    """The counterpart in `new_def` of the statement at `steps` (relative to `old_def`). Walks the
    enclosing blocks down from the definition, matching each block's statements. With
    `run_inserted` (a frame about to start that statement), statements inserted right in front of
    the counterpart are where it continues: they come between what has run and that statement."""
    old_node: ast.AST = old_def
    new_node: ast.AST = new_def
    new_steps: List[Step] = []
    same_headers = True
    for n, (field, index) in enumerate(steps):
        old_value = getattr(old_node, field, None)
        new_value = getattr(new_node, field, None)
        if not isinstance(old_value, list) or index is None or not isinstance(new_value, list):
            return StatementMatch(None, False, "its block changed shape")
        if old_value and isinstance(old_value[0], ast.stmt):
            pairs = match_statements(old_value, new_value)
            pair = pairs[index]
            if pair.new_index is None:
                return StatementMatch(None, False, pair.why)
            new_index = pair.new_index
            same = pair.same
            if run_inserted and n == len(steps) - 1:
                first = inserted_before(pairs, new_index)
                new_index, same = first, same and first == new_index
        else:   # except handlers, match cases: by position, with the same type / pattern
            if len(old_value) != len(new_value):
                return StatementMatch(None, False, f"the number of its enclosing {field} changed")
            new_index, same = index, True
            o, nw = old_value[index], new_value[index]
            head = (dump(getattr(o, "type", None)), getattr(o, "name", None), dump(getattr(o, "pattern", None)),
                    dump(getattr(o, "guard", None)))
            if head != (dump(getattr(nw, "type", None)), getattr(nw, "name", None),
                        dump(getattr(nw, "pattern", None)), dump(getattr(nw, "guard", None))):
                return StatementMatch(None, False, f"its enclosing {field[:-1] if field.endswith('s') else field} changed")
        old_node, new_node = old_value[index], new_value[new_index]
        new_steps.append((field, new_index))
        last = n == len(steps) - 1
        if isinstance(old_node, ast.stmt) and not last:
            if type(old_node) is not type(new_node):
                return StatementMatch(None, False, f"its enclosing {type(old_node).__name__} statement (line "
                                                   f"{old_node.lineno}) was replaced")
            if header(old_node) != header(new_node):
                if isinstance(old_node, STRUCTURAL_HEADERS):
                    return StatementMatch(None, False, f"the header of its enclosing {type(old_node).__name__} "
                                                       f"(line {old_node.lineno}) changed")
                same_headers = False
        if last:
            return StatementMatch(new_steps, same and same_headers and dump(old_node) == dump(new_node))
    return StatementMatch(new_steps, True)


def statement_prefix(def_node: DefNode, steps: List[Step]) -> int:
    """How many of `steps` (relative to the definition) lead to the innermost statement on the
    path: the rest is the path of an expression inside that statement."""
    node: ast.AST = def_node
    upto = 0
    for n, (field, index) in enumerate(steps):
        value = getattr(node, field)
        node = value[index] if index is not None else value
        if isinstance(node, ast.stmt):
            upto = n + 1
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            break
    return upto


def body_statements(def_node: DefNode) -> Iterator[Tuple[List[Step], ast.stmt]]:
    """(path relative to the definition, statement) of every statement of its body, nested blocks
    included, nested definitions' bodies excluded (they are code objects of their own)."""
    def walk(node: ast.AST, path: List[Step]) -> Iterator[Tuple[List[Step], ast.stmt]]:
        for field, value in ast.iter_fields(node):
            if not isinstance(value, list):
                continue
            for i, item in enumerate(value):
                if isinstance(item, ast.stmt):
                    yield path + [(field, i)], item
                    if not isinstance(item, DEFS):
                        yield from walk(item, path + [(field, i)])
                elif isinstance(item, (ast.excepthandler, ast.match_case)):
                    yield from walk(item, path + [(field, i)])
    yield from walk(def_node, [])


def span(node: ast.AST) -> Tuple[int, int, int, int]:
    return (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)


def contains(outer: Tuple[int, int, int, int], inner: Tuple) -> bool:
    l1, c1, l2, c2 = outer
    a1, b1, a2, b2 = inner
    return (l1, c1) <= (a1, b1) and (a2, b2) <= (l2, c2)
