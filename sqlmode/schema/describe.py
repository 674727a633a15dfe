"""Curated descriptions merged into the reflected schema.

Three sources, most specific last wins for each table and column:

1. comments in the database (``COMMENT ON``), reflected as ``comment``;
2. a curated TOML file (``database.descriptions``, e.g. ``schema_resources/sample.toml``)::

       [customers]
       description = "One row per customer account."
       [customers.columns]
       region = "Sales region: APAC, EMEA, LATAM or NA"

3. ``[[database.tables]] description = ...`` in the config (table descriptions only).

Descriptions are attached before bounding, so a description of a blocked table or column
disappears with it. Entries naming tables or columns the database does not have are
reported by :func:`unknown_entries` (the CLI and tests use it) and otherwise ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError
from .snapshot import TableInfo

__all__ = ["Descriptions", "TableDescription", "apply_descriptions", "load_descriptions", "unknown_entries"]


@dataclass(frozen=True, slots=True)
class TableDescription:
    description: str | None = None
    columns: dict[str, str] = field(default_factory=dict)


Descriptions = dict[str, TableDescription]


def load_descriptions(path: str | Path) -> Descriptions:
    """Read a curated descriptions file; a malformed one is a ConfigError naming file and key."""
    shown = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("descriptions file not found", path=shown, key="database.descriptions") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read descriptions: {e}", path=shown) from None
    out: Descriptions = {}
    for table, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError("expected a table: [name] with description and columns", path=shown, key=table)
        unknown = set(entry) - {"description", "columns"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", path=shown, key=table)
        desc = entry.get("description")
        cols = entry.get("columns", {})
        if desc is not None and not isinstance(desc, str):
            raise ConfigError("description must be a string", path=shown, key=f"{table}.description")
        if not isinstance(cols, dict) or not all(isinstance(v, str) for v in cols.values()):
            raise ConfigError(
                'columns must map names to strings: name = "..."', path=shown, key=f"{table}.columns"
            )
        out[table.lower()] = TableDescription(desc, {k.lower(): v for k, v in cols.items()})
    return out


def apply_descriptions(
    tables: list[TableInfo], curated: Descriptions | None = None, configured: dict[str, str] | None = None
) -> list[TableInfo]:
    """Tables with ``description`` (table) and column ``description`` filled from the sources."""
    curated = curated or {}
    configured = {k.lower(): v for k, v in (configured or {}).items() if v}
    out = []
    for t in tables:
        # An entry may name the table qualified (``sales.orders``), which wins over the bare name.
        names = [f"{t.schema}.{t.name}".lower()] if t.schema else []
        names.append(t.name.lower())
        entry = next((curated[n] for n in names if n in curated), TableDescription())
        desc = next((configured[n] for n in names if n in configured), None)
        desc = desc or entry.description or t.description or t.comment
        cols = tuple(
            replace(c, description=entry.columns.get(c.name.lower()) or c.description or c.comment)
            for c in t.columns
        )
        out.append(replace(t, description=desc, columns=cols))
    return out


def unknown_entries(tables: list[TableInfo], curated: Descriptions) -> list[str]:
    """``table`` / ``table.column`` names in ``curated`` that the database does not have."""
    by_name = {t.name.lower(): t for t in tables}
    by_name.update({f"{t.schema}.{t.name}".lower(): t for t in tables if t.schema})
    missing = []
    for name, entry in sorted(curated.items()):
        t = by_name.get(name)
        if t is None:
            missing.append(name)
            continue
        have = {c.name.lower() for c in t.columns}
        missing += [f"{name}.{c}" for c in sorted(entry.columns) if c not in have]
    return missing
