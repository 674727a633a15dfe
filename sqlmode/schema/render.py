"""Render the bounded schema compactly for an LLM: a few tokens a column, keys shown."""

from __future__ import annotations

from .snapshot import SchemaSnapshot, TableInfo

_SHORT_TYPES = {
    "CHARACTER VARYING": "VARCHAR",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "DOUBLE PRECISION": "DOUBLE",
}


def _type(t: str) -> str:
    return _SHORT_TYPES.get(t, t)


def render_table(t: TableInfo) -> str:
    """One table: a header line, then its columns on one line each as `name TYPE [flags]`."""
    refs = {}
    for fk in t.foreign_keys:
        for c, rc in zip(fk.columns, fk.ref_columns, strict=False):
            refs[c] = f"{fk.ref_table}.{rc}"
    head = t.name + (" (view)" if t.kind == "view" else "")
    if t.row_count is not None:
        head += f" ~{t.row_count} rows"
    desc = t.description or t.comment
    if desc:
        head += f" -- {desc}"
    lines = [head]
    for c in t.columns:
        bits = [f"  {c.name} {_type(c.type)}"]
        if c.primary_key:
            bits.append("PK")
        if c.name in refs:
            bits.append(f"-> {refs[c.name]}")
        if not c.nullable and not c.primary_key:
            bits.append("NOT NULL")
        line = " ".join(bits)
        if c.comment:
            line += f" -- {c.comment}"
        lines.append(line)
    return "\n".join(lines)


def render_schema(snapshot: SchemaSnapshot) -> str:
    """The whole bounded schema (pass ``snapshot.bounded()``)."""
    header = (
        f"# {snapshot.database} ({snapshot.dialect}): {len(snapshot.tables)} tables you may query. "
        "Columns as `name TYPE`; PK = primary key; `-> t.c` = foreign key. Nothing else exists for you."
    )
    return "\n\n".join([header, *(render_table(t) for _, t in sorted(snapshot.tables.items()))]) + "\n"
