"""SchemaSnapshot: what the database holds, and the bounded part an LLM may see.

The analyzer resolves columns against the *full* snapshot (so ``*`` over a table is
expanded to every real column, blocked ones included, and caught); the MCP resource
and the schema hash use the *bounded* view, in which blocked tables and columns do
not exist at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

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
    ref_table: str
    ref_columns: tuple[str, ...]


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

    def column(self, name: str) -> ColumnInfo | None:
        low = name.lower()
        for c in self.columns:
            if c.name.lower() == low:
                return c
        return None


def _norm(name: str) -> str:
    return name.lower()


@dataclass(slots=True)
class SchemaSnapshot:
    """Reflected tables keyed by lower-case name, plus what is blocked."""

    dialect: Literal["postgres", "duckdb"]
    database: str
    tables: dict[str, TableInfo]
    blocked_tables: frozenset[str] = frozenset()
    blocked_columns: frozenset[tuple[str, str]] = frozenset()
    # When set, only these tables are exposed (the [[database.tables]] allowlist).
    allowed_tables: frozenset[str] | None = None
    _hash: str | None = field(default=None, repr=False)
    # What the database says about callable functions (schema/functions.py), loaded on first use
    # by the engine confirmation; not part of the schema hash.
    functions: FunctionCatalog | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        dialect: Literal["postgres", "duckdb"],
        database: str,
        tables: list[TableInfo],
        *,
        blocked_tables: list[str] = (),  # type: ignore[assignment]
        blocked_fields: list[str] = (),  # type: ignore[assignment]
        allowed_tables: list[str] | None = None,
    ) -> SchemaSnapshot:
        cols = set()
        for f in blocked_fields:
            t, _, c = f.rpartition(".")
            cols.add((_norm(t.rpartition(".")[2]), _norm(c)))
        return cls(
            dialect=dialect,
            database=database,
            tables={_norm(t.name): t for t in tables},
            blocked_tables=frozenset(_norm(t.rpartition(".")[2]) for t in blocked_tables),
            blocked_columns=frozenset(cols),
            allowed_tables=frozenset(_norm(t) for t in allowed_tables) if allowed_tables else None,
        )

    # -- questions the analyzer asks -------------------------------------------------

    def table(self, name: str) -> TableInfo | None:
        return self.tables.get(_norm(name))

    def is_table_blocked(self, name: str) -> bool:
        return _norm(name) in self.blocked_tables

    def is_table_exposed(self, name: str) -> bool:
        n = _norm(name)
        if n in self.blocked_tables or n not in self.tables:
            return False
        return self.allowed_tables is None or n in self.allowed_tables

    def is_column_blocked(self, table: str, column: str) -> bool:
        return (_norm(table), _norm(column)) in self.blocked_columns or _norm(table) in self.blocked_tables

    def mapping(self) -> dict[str, dict[str, str]]:
        """{table: {column: type}} over every reflected table, for sqlglot's MappingSchema."""
        return {name: {c.name: c.type for c in t.columns} for name, t in self.tables.items()}

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
                    t.name,
                    t.kind,
                    [[c.name, c.type, c.nullable, c.primary_key] for c in t.columns],
                    [[list(fk.columns), fk.ref_table, list(fk.ref_columns)] for fk in t.foreign_keys],
                ]
                for _, t in sorted(b.tables.items())
            ]
            blob = json.dumps([self.dialect, doc], separators=(",", ":")).encode()
            self._hash = hashlib.sha256(blob).hexdigest()[:32]
        return self._hash
