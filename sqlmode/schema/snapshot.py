"""SchemaSnapshot: what the database holds, and the bounded part an LLM may see.

The analyzer resolves columns against the *full* snapshot (so ``*`` over a table is
expanded to every real column, blocked ones included, and caught); the MCP resource
and the schema hash use the *bounded* view, in which blocked tables and columns do
not exist at all.

Keys. A table's key is its lower-case name, or ``schema.name`` when several reflected schemas
(``database.schemas``) hold a table of that name: ``public.orders`` and ``sales.orders`` are
two tables everywhere (resource, analysis, grants, blocked lists), and a bare ``orders`` names
neither (:meth:`SchemaSnapshot.ambiguous`), since which one the database binds depends on the
session's search_path. :meth:`SchemaSnapshot.key_of` turns a reference (name, schema) into its
key; every question below takes keys. Config entries (``blocked_tables``, ``blocked_fields``,
``[[database.tables]]``) may be qualified (``sales.orders.note``); a bare name covers every
table of that name.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from ..config import blocked_name

if TYPE_CHECKING:
    from .functions import FunctionCatalog


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    comment: str | None = None
    # Curated description (schema_resources/ or config), shown instead of the comment.
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str  # the referenced table's key once in a snapshot (see SchemaSnapshot.build)
    ref_columns: tuple[str, ...]
    # Where the reflection found the referenced table; resolved into ref_table's key, not compared.
    ref_schema: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    columns: tuple[ColumnInfo, ...]
    schema: str | None = None
    kind: Literal["table", "view"] = "table"
    foreign_keys: tuple[ForeignKey, ...] = ()
    comment: str | None = None
    description: str | None = None
    row_count: int | None = None
    # (schema, name) of the tables it inherits from: a PostgreSQL partition's parent, an INHERITS
    # child's parents. Blocks on a parent cover it, and a plan's scan of it stands for the parent.
    parents: tuple[tuple[str | None, str], ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        low = name.lower()
        for c in self.columns:
            if c.name.lower() == low:
                return c
        return None


def _norm(name: str) -> str:
    return name.lower()


def _split(entry: str) -> tuple[str | None, str]:
    """``[catalog.][schema.]table`` -> (schema or None, table), lower-case."""
    parts = _norm(entry).split(".")
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


@dataclass(slots=True)
class SchemaSnapshot:
    """Reflected tables keyed by lower-case name, plus what is blocked."""

    dialect: str  # the engine's registry name (EngineTraits.name)
    database: str
    tables: dict[str, TableInfo]
    blocked_tables: frozenset[str] = frozenset()
    blocked_columns: frozenset[tuple[str, str]] = frozenset()
    # When set, only these tables are exposed (the [[database.tables]] allowlist).
    allowed_tables: frozenset[str] | None = None
    _hash: str | None = field(default=None, repr=False)
    _content: str | None = field(default=None, repr=False, compare=False)
    # What the database says about callable functions (schema/functions.py), loaded on first use
    # by the engine confirmation; not part of the schema hash.
    functions: FunctionCatalog | None = field(default=None, repr=False, compare=False)
    # key -> the keys of every table it inherits from, nearest first (TableInfo.parents).
    ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        dialect: str,
        database: str,
        tables: list[TableInfo],
        *,
        blocked_tables: list[str] = (),  # type: ignore[assignment]
        blocked_fields: list[str] = (),  # type: ignore[assignment]
        allowed_tables: list[str] | None = None,
    ) -> SchemaSnapshot:
        names = Counter(_norm(t.name) for t in tables)
        keyed: dict[str, TableInfo] = {}
        for t in tables:
            n = _norm(t.name)
            keyed[f"{_norm(t.schema)}.{n}" if names[n] > 1 and t.schema else n] = t
        snap = cls(dialect=dialect, database=database, tables=keyed)
        # Foreign keys name the referenced table by its key, so rendering and bounding follow it.
        for key, t in list(keyed.items()):
            if t.foreign_keys:
                fks = tuple(replace(fk, ref_table=snap._ref_key(fk, t.schema)) for fk in t.foreign_keys)
                keyed[key] = replace(t, foreign_keys=fks)
        cols: set[tuple[str, str]] = set()
        for b in (blocked_name(f, field=True) for f in blocked_fields):
            cols.update((k, b.column) for k in snap.keys_for(b.table_entry))
        tables_named = (blocked_name(t, field=False).table_entry for t in blocked_tables)
        blocked = {k for t in tables_named for k in snap.keys_for(t)}
        # A partition (or inheritance child) of a blocked table, or of one with blocked columns, is
        # blocked alike: its rows are the parent's, and it can be queried by its own name.
        snap.ancestors = snap._ancestry()
        for key, up in snap.ancestors.items():
            if blocked.intersection(up):
                blocked.add(key)
            cols.update((key, c) for t, c in list(cols) if t in up)
        snap.blocked_tables = frozenset(blocked)
        snap.blocked_columns = frozenset(cols)
        if allowed_tables:
            snap.allowed_tables = frozenset(k for t in allowed_tables for k in snap.keys_for(t))
        return snap

    def _ancestry(self) -> dict[str, tuple[str, ...]]:
        """key -> keys of the reflected tables it inherits from, nearest first (cycles cut)."""
        direct: dict[str, list[str]] = {}
        for key, t in self.tables.items():
            ups = []
            for schema, name in t.parents:
                n = _norm(name)
                up = self._exact(n, _norm(schema)) if schema else (n if n in self.tables else None)
                if up is not None and up != key:
                    ups.append(up)
            if ups:
                direct[key] = ups
        out: dict[str, tuple[str, ...]] = {}
        for key in direct:
            seen: list[str] = []
            todo = list(direct[key])
            while todo:
                up = todo.pop(0)
                if up in seen or up == key:
                    continue
                seen.append(up)
                todo += direct.get(up, [])
            out[key] = tuple(seen)
        return out

    # -- names -------------------------------------------------------------------------

    def key_of(self, name: str, schema: str | None = None) -> str:
        """The key of a reference to ``[schema.]name``.

        Not necessarily a key of a table: an unknown name, a bare name that is ambiguous, or a
        qualified name whose schema does not hold it, come back as themselves (lower-case).
        """
        n = _norm(name)
        if not schema:
            return n
        exact = self._exact(n, _norm(schema))
        if exact is not None:
            return exact
        # A schema that does not hold it: the qualified name when it is one of several same-named
        # tables (an unknown table), else the one table of that name, whose schema the analyzer
        # then finds wrong (TABLE_NOT_ALLOWED).
        return f"{_norm(schema)}.{n}" if self.ambiguous(n) else n

    def _exact(self, n: str, schema: str) -> str | None:
        qualified = f"{schema}.{n}"
        if qualified in self.tables:
            return qualified
        t = self.tables.get(n)
        return n if t is not None and (not t.schema or _norm(t.schema) == schema) else None

    def _ref_key(self, fk: ForeignKey, schema: str | None) -> str:
        n = _norm(fk.ref_table)
        ref_schema = fk.ref_schema or schema
        if not ref_schema:
            return n
        return self._exact(n, _norm(ref_schema)) or f"{_norm(ref_schema)}.{n}"

    def keys_for(self, entry: str) -> list[str]:
        """The keys a config entry ``[schema.]table`` names: every same-named table when unqualified."""
        schema, n = _split(entry)
        exact = self._exact(n, schema) if schema is not None else None
        if exact is not None:
            return [exact]
        # Unqualified, or a schema that does not hold it: over-approximate to every table of that name.
        return [n, *self.ambiguous(n)]

    def ambiguous(self, name: str) -> list[str]:
        """The qualified keys of the tables a bare ``name`` could mean, when there are several."""
        n = _norm(name)
        if n in self.tables:
            return []
        return sorted(k for k, t in self.tables.items() if "." in k and _norm(t.name) == n)

    def display_name(self, key: str) -> str:
        """How a table is named to users and models: ``orders``, or ``sales.orders`` when qualified."""
        t = self.tables.get(key)
        if t is None:
            return key
        return f"{t.schema}.{t.name}" if key != _norm(t.name) and t.schema else t.name

    # -- questions the analyzer asks -------------------------------------------------

    def table(self, name: str, schema: str | None = None) -> TableInfo | None:
        """The table with key ``name`` (or referenced as ``schema.name``)."""
        return self.tables.get(self.key_of(name, schema))

    def is_table_blocked(self, name: str) -> bool:
        return _norm(name) in self.blocked_tables

    def is_table_exposed(self, name: str) -> bool:
        n = _norm(name)
        if n in self.blocked_tables or n not in self.tables:
            return False
        return self.allowed_tables is None or n in self.allowed_tables

    def is_column_blocked(self, table: str, column: str) -> bool:
        return (_norm(table), _norm(column)) in self.blocked_columns or _norm(table) in self.blocked_tables

    # -- the bounded view -------------------------------------------------------------

    def bounded(self) -> SchemaSnapshot:
        """Only exposed tables and unblocked columns; foreign keys into hidden tables dropped."""
        out: dict[str, TableInfo] = {}
        for name, t in self.tables.items():
            if not self.is_table_exposed(name):
                continue
            cols = tuple(c for c in t.columns if (name, _norm(c.name)) not in self.blocked_columns)
            fks = tuple(
                fk
                for fk in t.foreign_keys
                if self.is_table_exposed(fk.ref_table)
                and not any((name, _norm(c)) in self.blocked_columns for c in fk.columns)
                and not any((_norm(fk.ref_table), _norm(c)) in self.blocked_columns for c in fk.ref_columns)
            )
            out[name] = replace(t, columns=cols, foreign_keys=fks)
        # Keys stay as they were (a qualified key whose twin is hidden stays qualified: the
        # database still has both, so a bare name remains ambiguous).
        return SchemaSnapshot(self.dialect, self.database, out, allowed_tables=None)

    @property
    def schema_hash(self) -> str:
        """sha256 over the bounded view: changes when anything an LLM can see changes."""
        if self._hash is None:
            b = (
                self.bounded()
                if (self.blocked_tables or self.blocked_columns or self.allowed_tables)
                else self
            )
            doc = [
                [
                    b.display_name(key),
                    t.kind,
                    [[c.name, c.type, c.nullable, c.primary_key] for c in t.columns],
                    [[list(fk.columns), fk.ref_table, list(fk.ref_columns)] for fk in t.foreign_keys],
                ]
                for key, t in sorted(b.tables.items())
            ]
            blob = json.dumps([self.dialect, doc], separators=(",", ":")).encode()
            self._hash = hashlib.sha256(blob).hexdigest()[:32]
        return self._hash

    @property
    def content_hash(self) -> str:
        """sha256 over everything the analyzer reads, hidden and blocked parts included.

        What caches of analyses key on: the schema hash sees only the bounded view, so a blocked
        column added to a table (which ``SELECT *`` would now read) leaves it unchanged.
        """
        if self._content is None:
            doc = [
                self.dialect,
                self.database,
                sorted((k, repr(t)) for k, t in self.tables.items()),
                sorted(self.blocked_tables),
                sorted(self.blocked_columns),
                None if self.allowed_tables is None else sorted(self.allowed_tables),
            ]
            self._content = hashlib.sha256(repr(doc).encode()).hexdigest()[:32]
        return self._content
