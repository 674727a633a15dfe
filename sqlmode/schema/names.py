"""Every table and column the config names must exist in the database.

A typo in a limit is a limit that silently does nothing: ``blocked_fields = ["events.kidn"]``
leaves ``events.kind`` readable, ``blocked_tables = ["evnts"]`` blocks nothing, and a
``[[database.tables]]`` entry naming no table hides nothing or exposes less than intended. So
start-up fails on such an entry, naming it, with the closest existing name as a suggestion.
"""

from __future__ import annotations

import difflib

from ..config import Settings
from ..engines.base import engine_for_url
from ..errors import ConfigError
from .snapshot import SchemaSnapshot, TableInfo

__all__ = ["check_config_names", "config_name_problems"]


def _lookup(snapshot: SchemaSnapshot) -> dict[str, TableInfo]:
    """Lower-cased ``table`` and ``schema.table`` -> table."""
    out: dict[str, TableInfo] = {}
    for t in snapshot.tables.values():
        out.setdefault(t.name.lower(), t)
        if t.schema:
            out[f"{t.schema}.{t.name}".lower()] = t
    return out


def _suggest(word: str, candidates: list[str]) -> str:
    low = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)
    return f" (did you mean {low[close[0]]!r}?)" if close else ""


def config_name_problems(settings: Settings, snapshot: SchemaSnapshot) -> list[str]:
    """One line per config entry that names a table or column the database does not have."""
    tables = _lookup(snapshot)
    names = sorted({t.name for t in snapshot.tables.values()})
    problems: list[str] = []

    def table(entry: str, key: str, written: str) -> TableInfo | None:
        t = tables.get(entry.lower())
        if t is None:
            problems.append(
                f"{key} = {written!r}: no table {entry!r} in the database{_suggest(entry, names)}"
            )
        return t

    cm = settings.code_mode
    for i, b in enumerate(cm.blocked_table_names):
        table(b.table_entry, f"code_mode.blocked_tables[{i}]", b.entry)
    for i, b in enumerate(cm.blocked_field_names):
        col = b.column
        t = table(b.table_entry, f"code_mode.blocked_fields[{i}]", b.entry)
        if t is not None and t.column(col) is None:
            cols = [c.name for c in t.columns]
            problems.append(
                f"code_mode.blocked_fields[{i}] = {b.entry!r}: table {t.name!r} has no column {col!r}"
                f"{_suggest(col, cols)}"
            )
    for i, tc in enumerate(settings.database.tables):
        table(tc.name, f"database.tables[{i}].name", tc.name)
    for i, schema in enumerate(settings.database.schemas):
        if engine_for_url(settings.database.url).traits.exposes_schemas and not any(
            (t.schema or "").lower() == schema.lower() for t in snapshot.tables.values()
        ):
            problems.append(f"database.schemas[{i}] = {schema!r}: no table or view in a schema of that name")
    return problems


def check_config_names(settings: Settings, snapshot: SchemaSnapshot) -> None:
    """Raise ConfigError (CONFIG_UNKNOWN_NAME) when the config names a missing table or column."""
    problems = config_name_problems(settings, snapshot)
    if not problems:
        return
    where = settings.source_path or "the configuration"
    total = len(snapshot.tables)
    raise ConfigError(
        "; ".join(problems),
        path=where,
        code="CONFIG_UNKNOWN_NAME",
        hint=(
            f"Fix the spelling (the database has {total} tables and views"
            + (f": {', '.join(sorted(t.name for t in snapshot.tables.values())[:20])}" if total else "")
            + "). A limit naming nothing would silently not apply, so sqlmode does not start."
        ),
    )
