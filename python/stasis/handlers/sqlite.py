"""sqlite3: connections and cursors, and the sqlite3 module's adapters and converters.

A connection to an in-memory database is saved with its contents (Connection.serialize) and
comes back as a new in-memory connection holding them (deserialize). A connection to a database
file is re-opened by its path (PRAGMA database_list), with attached files attached again. Both get
back their settings: isolation_level, row_factory, text_factory, the per-connection pragmas
listed in _PRAGMAS, and, for connections made by sqlite3.connect under `stasis run`, their
connect() arguments (timeout, detect_types, check_same_thread, cached_statements, uri) and
everything registered on them — SQL functions, aggregates, window functions, collations, the
authorizer, progress handler and trace callback, loaded extensions — because there
sqlite3.connect makes connections of a subclass that records those calls (SQLite can list the
names of functions and collations but never hand back the Python callables). Those connections
do not enforce check_same_thread: Stasis reads them from its own thread when it suspends the
program (the program's value is recorded and given back to a connection made outside `stasis
run`). A connection made outside `stasis run` that has functions or collations of its own is
refused, naming them; so is one with check_same_thread=True suspended from another thread.

An open transaction: on an in-memory database it is captured with its writes (serialize sees
them) and a transaction is begun again on resume, so commit() works as before; a rollback()
after the resume undoes only what was written after it (the writes made before the suspension
are part of the restored database). On a database file it is refused: its uncommitted writes
live in this connection and its journal, which SQLite cannot hand to another process; commit()
or rollback() first. sqlite3.Row objects keep their column names and values. A cursor keeps its place in the rows of a read-only query (made under
`stasis run`: the query is run again on resume and the rows already fetched are skipped; the
database is the same, so are the rows). Not supported: TEMP tables, sqlite3.Blob.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import CorruptSnapshotError, SnapshotIOError

# Per-connection settings that SQLite reports and that a new connection does not inherit from the
# database file (journal_mode and the like live in the file).
_PRAGMAS = ("foreign_keys", "recursive_triggers", "busy_timeout", "cache_size", "synchronous",
            "temp_store", "query_only", "automatic_index", "cell_size_check", "defer_foreign_keys",
            "ignore_check_constraints", "reverse_unordered_selects", "trusted_schema")

_baseline: Optional[Tuple[set, set]] = None  # (functions, collations) of a fresh connection


def _sqlite3() -> Any:
    import sqlite3
    return sqlite3


def _builtin_names() -> Tuple[set, set]:
    global _baseline
    if _baseline is None:
        fresh = _sqlite3().connect(":memory:")
        try:
            _baseline = (_function_names(fresh), {r[1] for r in _query(fresh, "PRAGMA collation_list")})
        finally:
            fresh.close()
    return _baseline


def _function_names(conn: Any) -> set:
    return {(r[0], r[4]) for r in _query(conn, "PRAGMA function_list") if r[1] == 0}


# ---- the recording connection and cursor (under stasis run) ---------------------------------------

_recording: Dict[type, type] = {}
_CONNECT_ARGS = ("timeout", "detect_types", "isolation_level", "check_same_thread", "factory",
                 "cached_statements", "uri")


def _record(conn: Any) -> dict:
    rec = conn.__dict__.get("_stasis_record")
    if rec is None:
        rec = conn.__dict__["_stasis_record"] = {"connect": None, "functions": {}, "aggregates": {},
                                                 "windows": {}, "collations": {}, "callbacks": {},
                                                 "extensions": []}
    return rec


def recording_class(base: type) -> type:
    """A subclass of connection class `base` that records what sqlite3 cannot read back."""
    cls = _recording.get(base)
    if cls is not None:
        return cls
    sqlite3 = _sqlite3()

    class Connection(base):
        def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.update(zip(_CONNECT_ARGS, args))
            kwargs.pop("factory", None)
            record = dict(kwargs)
            # Stasis reads the connection from its own thread when it suspends the program.
            kwargs["check_same_thread"] = False
            super().__init__(database, **kwargs)
            _record(self)["connect"] = (database, (), record)

        def cursor(self, factory: Any = None) -> Any:
            return super().cursor(_recording_cursor(factory or sqlite3.Cursor))

        # What Connection.execute* do, through the recording cursor (the C methods make a plain one).
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self.cursor().executemany(sql, parameters)

        def executescript(self, sql_script: str, /) -> Any:
            return self.cursor().executescript(sql_script)

        def create_function(self, name: str, narg: int, func: Any, *, deterministic: bool = False) -> None:
            super().create_function(name, narg, func, deterministic=deterministic)
            _record(self)["functions"][(name.lower(), narg)] = (name, narg, func, deterministic)

        def create_aggregate(self, name: str, n_arg: int, aggregate_class: Any) -> None:
            super().create_aggregate(name, n_arg, aggregate_class)
            _record(self)["aggregates"][(name.lower(), n_arg)] = (name, n_arg, aggregate_class)

        if hasattr(base, "create_window_function"):
            def create_window_function(self, name: str, num_params: int, aggregate_class: Any, /) -> None:
                super().create_window_function(name, num_params, aggregate_class)
                _record(self)["windows"][(name.lower(), num_params)] = (name, num_params, aggregate_class)

        def create_collation(self, name: str, callback: Any, /) -> None:
            super().create_collation(name, callback)
            _record(self)["collations"][name.upper()] = (name, callback)

        def set_authorizer(self, authorizer_callback: Any) -> None:
            super().set_authorizer(authorizer_callback)
            _record(self)["callbacks"]["set_authorizer"] = (authorizer_callback,)

        def set_progress_handler(self, progress_handler: Any, n: int) -> None:
            super().set_progress_handler(progress_handler, n)
            _record(self)["callbacks"]["set_progress_handler"] = (progress_handler, n)

        def set_trace_callback(self, trace_callback: Any) -> None:
            super().set_trace_callback(trace_callback)
            _record(self)["callbacks"]["set_trace_callback"] = (trace_callback,)

        def load_extension(self, path: str, *args: Any, **kwargs: Any) -> None:
            super().load_extension(path, *args, **kwargs)
            _record(self)["extensions"].append((path, args, kwargs))

    Connection.__module__, Connection.__qualname__ = base.__module__, base.__qualname__
    _recording[base] = Connection
    return Connection


_cursors: Dict[type, type] = {}


def _recording_cursor(base: type) -> type:
    cls = _cursors.get(base)
    if cls is not None:
        return cls

    class Cursor(base):
        # (sql, parameters) of the last statement, and how many of its rows were fetched; None
        # when it has no rows left to give (finished, or a statement without rows).
        _stasis_query: Optional[Tuple[str, Any]] = None
        _stasis_fetched = 0

        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            self._stasis_query = None
            super().execute(sql, parameters)
            if self.description is not None:
                self._stasis_query, self._stasis_fetched = (sql, parameters), 0
            return self

        def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
            self._stasis_query = None
            return super().executemany(sql, seq_of_parameters)

        def executescript(self, sql_script: str, /) -> Any:
            self._stasis_query = None
            return super().executescript(sql_script)

        def __next__(self) -> Any:
            try:
                row = super().__next__()
            except StopIteration:
                self._stasis_query = None
                raise
            self._stasis_fetched += 1
            return row

        def fetchone(self) -> Any:
            row = super().fetchone()
            if row is None:
                self._stasis_query = None
            else:
                self._stasis_fetched += 1
            return row

        def fetchmany(self, size: Optional[int] = None) -> list:
            rows = super().fetchmany(self.arraysize if size is None else size)
            self._stasis_fetched += len(rows)
            return rows

        def fetchall(self) -> list:
            rows = super().fetchall()
            self._stasis_query = None
            return rows

    Cursor.__module__, Cursor.__qualname__ = base.__module__, base.__qualname__
    _cursors[base] = Cursor
    return Cursor


def _patch(module: Any) -> None:
    """sqlite3.connect (and sqlite3.dbapi2.connect) make recording connections from now on."""
    original = getattr(module.connect, "_stasis_original", module.connect)

    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        factory = kwargs.pop("factory", None)
        if factory is None and len(args) >= 5:  # factory given by position
            args = list(args)
            factory = args.pop(4)
            args.insert(4, recording_class(factory))
            return original(database, *args, **kwargs)
        return original(database, *args, factory=recording_class(factory or module.Connection), **kwargs)
    connect._stasis_original = original  # type: ignore[attr-defined]
    connect.__doc__, connect.__name__, connect.__qualname__ = original.__doc__, "connect", "connect"
    connect.__module__ = "sqlite3"
    for m in (module, sys.modules.get("sqlite3.dbapi2")):
        if m is not None:
            m.connect = connect


class _PatchOnImport:
    """A meta-path finder that lets sqlite3 be imported as usual, then patches its connect()."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "sqlite3":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        _patch(module)


def record_connections() -> None:
    """Under `stasis run` / `stasis resume`: connections made by sqlite3.connect record their
    arguments and the functions, collations and callbacks registered on them."""
    if "sqlite3" in sys.modules:
        _patch(sys.modules["sqlite3"])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


# ---- saving ----------------------------------------------------------------------------------


def _query(conn: Any, sql: str) -> list:
    """Rows of `sql` as plain tuples of str, whatever row and text factories the program set
    (Stasis's own queries run on a plain cursor of the connection; the text factory, a setting
    of the connection, is set back at once)."""
    sqlite3 = _sqlite3()
    text_factory = conn.text_factory
    conn.text_factory = str
    try:
        cur = sqlite3.Cursor(conn)
        cur.row_factory = None
        return sqlite3.Cursor.execute(cur, sql).fetchall()
    finally:
        conn.text_factory = text_factory


def _save_connection(conn: Any) -> dict:
    sqlite3 = _sqlite3()
    try:
        databases = _query(conn, "PRAGMA database_list")
    except sqlite3.ProgrammingError as e:
        if "thread" in str(e):
            raise TypeError("it was made outside `stasis run` with check_same_thread=True, so no other "
                            "thread (Stasis writes snapshots from its own) may read it") from None
        return {"closed": True, "class": _plain_class(type(conn))}
    attrs = dict(getattr(conn, "__dict__", {}))
    rec = attrs.pop("_stasis_record", None)
    # A file database reports its absolute path; an in-memory one "" (or "x": a database given
    # its contents by deserialize() lives in SQLite's memdb, under that name).
    databases = [(seq, name, path if os.path.isabs(path) else "") for seq, name, path in databases]
    files = {name: path for _seq, name, path in databases}
    main = files.get("main", "")
    if conn.in_transaction and main:
        raise TypeError(f"it has an open transaction on the database file {main!r}: SQLite keeps the "
                        "uncommitted writes in this connection and its journal and cannot hand them to "
                        "another process; commit() or rollback() before the program is suspended")
    if conn.in_transaction and any(not path for _seq, name, path in databases if name not in ("main", "temp")):
        raise TypeError("it has an open transaction and an attached in-memory database, whose "
                        "uncommitted pages cannot be read; commit() before the program is suspended")
    if any(r[0] for r in _query(conn, "SELECT count(*) FROM temp.sqlite_master")):
        raise TypeError("it has TEMP tables, which live only in this connection; use a regular or an "
                        "attached in-memory table")
    if rec is None:
        functions, collations = _builtin_names()
        own_f = sorted(f"{n}/{a}" for n, a in _function_names(conn) - functions)
        own_c = sorted({r[1] for r in _query(conn, "PRAGMA collation_list")} - collations)
        if own_f or own_c:
            what = ", ".join([f"function {f}" for f in own_f] + [f"collation {c}" for c in own_c])
            raise TypeError(f"it has SQL functions or collations of its own ({what}) registered on a "
                            "connection made outside `stasis run`, which SQLite cannot hand back; under "
                            "`stasis run` they are recorded and kept")
    state: Dict[str, Any] = {
        "class": _plain_class(type(conn)),
        "main": main,
        "image": None if main else _image(conn, "main"),
        "attached": [(name, path, None if path else _image(conn, name))
                     for _seq, name, path in databases if name not in ("main", "temp")],
        "isolation_level": conn.isolation_level, "row_factory": conn.row_factory,
        "text_factory": conn.text_factory, "in_transaction": conn.in_transaction,
        "pragmas": {p: r[0] for p in _PRAGMAS for r in _query(conn, f"PRAGMA {p}")},
        "record": rec,
    }
    if attrs:
        state["dict"] = attrs
    return state


def _image(conn: Any, name: str) -> bytes:
    """The pages of in-memory database `name` as this connection sees them, a transaction's
    writes included (b"" for a database that has none yet)."""
    if _query(conn, f"PRAGMA {_quote(name)}.page_count")[0][0] == 0:
        return b""
    return conn.serialize(name=name)


def _plain_class(cls: type) -> type:
    """The program's connection class behind a recording subclass."""
    for base, rec in _recording.items():
        if rec is cls:
            return base
    return cls


def _save_cursor(cur: Any) -> dict:
    query = getattr(cur, "_stasis_query", None)
    if query is None and not hasattr(type(cur), "_stasis_query") and cur.description is not None:
        raise TypeError("it may be in the middle of the rows of a query, and a cursor made outside "
                        "`stasis run` cannot tell which query or how far; under `stasis run` it is kept")
    if query is not None and not _read_only(query[0]):
        raise TypeError("it is in the middle of the rows returned by a statement that writes "
                        f"({query[0].strip()[:40]!r}), which cannot be run again on resume")
    return {"class": _plain_cursor_class(type(cur)), "connection": cur.connection, "query": query,
            "fetched": getattr(cur, "_stasis_fetched", 0), "arraysize": cur.arraysize,
            "row_factory": cur.row_factory}


def _plain_cursor_class(cls: type) -> type:
    for base, rec in _cursors.items():
        if rec is cls:
            return base
    return cls


def _read_only(sql: str) -> bool:
    words = sql.lstrip().split(None, 1)
    first = words[0].upper() if words else ""
    if first in ("SELECT", "VALUES", "EXPLAIN"):
        return True
    if first == "WITH":  # a CTE may end in INSERT/UPDATE/DELETE
        upper = sql.upper()
        return not any(w in upper for w in ("INSERT", "UPDATE", "DELETE", "REPLACE"))
    if first == "PRAGMA":
        return "=" not in sql
    return False


# ---- loading -----------------------------------------------------------------------------------


def _load_connection(state: dict) -> Any:
    sqlite3 = _sqlite3()
    cls = state["class"]
    if not (isinstance(cls, type) and issubclass(cls, sqlite3.Connection)):
        raise CorruptSnapshotError(f"{cls!r} is not a sqlite3 connection class")
    rec = state.get("record")
    if state.get("closed"):
        conn = sqlite3.connect(":memory:", factory=cls)
        conn.close()
        return conn
    database, args, kwargs = (rec["connect"] if rec and rec.get("connect") else (":memory:", (), {}))
    main = state["main"]
    if kwargs.get("uri") and main and isinstance(database, str) and "?" in database:
        database = "file:" + main + "?" + database.split("?", 1)[1]  # its URI parameters (mode=ro...)
    else:
        database = main or ":memory:"
        kwargs = {k: v for k, v in kwargs.items() if k != "uri"}
    factory = recording_class(cls) if rec is not None or _is_patched() else cls
    try:
        conn = _connect_file(sqlite3, database, args, kwargs, factory) if main else \
            factory(database, *args, **kwargs)
    except sqlite3.Error as e:
        raise SnapshotIOError(f"cannot open the SQLite database {database!r} again (saved in the "
                              f"snapshot): {e}") from None
    if state["image"]:
        _fill_memory(sqlite3, conn, state["image"])
    for name, path, image in state["attached"]:
        if path:
            sqlite3.Connection.execute(conn, "ATTACH DATABASE ? AS " + _quote(name), (path,))
        else:
            sqlite3.Connection.execute(conn, "ATTACH DATABASE ':memory:' AS " + _quote(name))
            if image:
                conn.deserialize(image, name=name)
    conn.isolation_level = state["isolation_level"]
    conn.row_factory = state["row_factory"]
    conn.text_factory = state["text_factory"]
    for pragma, value in state["pragmas"].items():
        if pragma in _PRAGMAS:
            sqlite3.Connection.execute(conn, f"PRAGMA {pragma} = {int(value)}")
    if rec is not None:
        _replay(conn, rec)
    if state.get("dict"):
        conn.__dict__.update(state["dict"])
    if state["in_transaction"]:
        mode = conn.isolation_level or "DEFERRED"
        sqlite3.Connection.execute(conn, f"BEGIN {mode if mode.upper() in ('DEFERRED', 'IMMEDIATE', 'EXCLUSIVE') else ''}")
    return conn


def _fill_memory(sqlite3: Any, conn: Any, image: bytes) -> None:
    """Gives in-memory connection `conn` the database `image`, copied in by the backup API from a
    scratch connection that deserializes it: `conn` stays an ordinary in-memory database, whose
    serialize() reads pages through SQLite's pager and so sees a transaction's writes (a
    database deserialized into a connection lives in SQLite's memdb, whose serialize() copies its
    storage, without the pages a transaction has not written there yet)."""
    scratch = sqlite3.Connection(":memory:")
    try:
        scratch.deserialize(image)
        scratch.backup(conn)
    finally:
        scratch.close()


def _connect_file(sqlite3: Any, path: str, args: tuple, kwargs: dict, factory: type) -> Any:
    if not os.path.exists(path):
        raise SnapshotIOError(f"cannot open the SQLite database {path!r} again (saved in the snapshot): "
                              "the file no longer exists")
    return factory(path, *args, **kwargs)


def _is_patched() -> bool:
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and hasattr(sqlite3.connect, "_stasis_original")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _replay(conn: Any, rec: dict) -> None:
    for name, narg, func, deterministic in rec["functions"].values():
        conn.create_function(name, narg, func, deterministic=deterministic)
    for name, narg, cls in rec["aggregates"].values():
        conn.create_aggregate(name, narg, cls)
    for name, narg, cls in rec["windows"].values():
        conn.create_window_function(name, narg, cls)
    for name, callback in rec["collations"].values():
        conn.create_collation(name, callback)
    for method, args in rec["callbacks"].items():
        getattr(conn, method)(*args)
    if rec["extensions"]:
        conn.enable_load_extension(True)
        for path, args, kwargs in rec["extensions"]:
            conn.load_extension(path, *args, **kwargs)
        conn.enable_load_extension(False)


def _load_cursor(state: dict) -> Any:
    conn = state["connection"]
    cls = state["class"]
    sqlite3 = _sqlite3()
    cur = conn.cursor(cls if cls is not sqlite3.Cursor else None)
    cur.arraysize = state["arraysize"]
    cur.row_factory = None  # the rows skipped below are not the program's
    query = state["query"]
    if query is not None:
        cur.execute(*query)
        for _ in range(state["fetched"]):
            if sqlite3.Cursor.fetchone(cur) is None:
                raise CorruptSnapshotError("a sqlite3 cursor's query gives fewer rows than it had "
                                           "already fetched when it was saved")
        if hasattr(cur, "_stasis_fetched"):
            cur._stasis_fetched = state["fetched"]
    cur.row_factory = state["row_factory"]
    return cur


def _save_row(row: Any) -> Tuple[tuple, tuple]:
    return (tuple(row.keys()), tuple(row))


_row_source: Any = None  # an in-memory connection whose cursors name the columns of loaded rows


def _load_row(state: Tuple[tuple, tuple]) -> Any:
    """A sqlite3.Row of the same column names and values (a Row needs a cursor that describes
    them: one of a query selecting NULL under each name)."""
    global _row_source
    sqlite3 = _sqlite3()
    names, values = state
    if len(names) != len(values) or not names:
        raise CorruptSnapshotError("a sqlite3.Row of the snapshot has different numbers of names and values")
    if _row_source is None:
        _row_source = sqlite3.Connection(":memory:", check_same_thread=False)
    cur = sqlite3.Cursor(_row_source)
    sqlite3.Cursor.execute(cur, "SELECT " + ", ".join("NULL AS " + _quote(n) for n in names))
    return sqlite3.Row(cur, tuple(values))


def _save_sqlite3_module(module: Any) -> Tuple[dict, dict]:
    """Adapters and converters the program registered (sqlite3.register_adapter/_converter)."""
    def own(d: dict) -> dict:  # not the defaults sqlite3.dbapi2 registers when imported
        return {k: v for k, v in d.items() if getattr(v, "__module__", None) != "sqlite3.dbapi2"}
    return (own(module.adapters), own(module.converters))


def _load_sqlite3_module(module: Any, state: Tuple[dict, dict]) -> None:
    adapters, converters = state
    module.adapters.update(adapters)
    module.converters.update(converters)


def sqlite_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import sqlite3
    return {sqlite3.Connection: ("stasis.sqlite3.connection", _save_connection, _load_connection),
            sqlite3.Cursor: ("stasis.sqlite3.cursor", _save_cursor, _load_cursor),
            sqlite3.Row: ("stasis.sqlite3.row", _save_row, _load_row)}


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"sqlite3": (_save_sqlite3_module, _load_sqlite3_module)}
