"""Tables: files and URLs, system catalogs, blocked, ambiguous, unknown, unexposed, named
through the wrong schema or another database."""

from __future__ import annotations

import difflib

from sqlglot import exp

from ...models import Violation
from ..foreign import name_hint
from .base import ALWAYS_BLOCKED_CATALOG, CATALOG_TABLE_PREFIXES, RuleContext, add_once


def blocked_tables(ctx: RuleContext) -> list[Violation]:
    """Every table read must be a known, exposed, unblocked table named through its own schema.

    Records ``ctx.tables`` (the known tables read) and ``ctx.catalog`` (a system catalog is read).
    """
    refs, snapshot, rules, code = ctx.refs, ctx.snapshot, ctx.rules, ctx.code
    catalog_schemas = rules.catalog_schemas
    out: list[Violation] = []
    seen: set[tuple[str, str]] = set()
    known: set[str] = set()
    for table in refs.tables:
        name = table.name.lower()
        db = table.text("db").lower()
        catalog = table.text("catalog").lower()
        shown = ".".join(p for p in (catalog, db, name) if p)
        ident = table.this
        if (
            isinstance(ident, exp.Identifier)
            and ident.quoted
            and (f"'{table.name}'" in code or any(ch in table.name for ch in "/:\\") or "." in table.name)
        ):
            add_once(out, seen, "FILE_ACCESS", shown, f"`{table.name}` is a file or URL, not a table.")
            continue
        is_catalog = db in catalog_schemas or name.startswith(CATALOG_TABLE_PREFIXES)
        if is_catalog and (rules.table_blocked(snapshot, name) or snapshot.table(name) is None):
            ctx.catalog = True
            if rules.block_introspection or name in ALWAYS_BLOCKED_CATALOG or db == "pg_toast":
                add_once(out, seen, "INTROSPECTION_BLOCKED", shown, f"`{shown}` is a system catalog.")
            continue
        # The snapshot's key: `sales.orders` when several schemas have an `orders` (see snapshot.py).
        key = snapshot.key_of(name, db)
        if rules.table_blocked(snapshot, key):
            msg = f"Table `{key}` is blocked by policy (named as `{shown}`)."
            add_once(out, seen, "TABLE_BLOCKED", key, msg)
            continue
        info = snapshot.table(key)
        if info is None and not db and (same := snapshot.ambiguous(name)):
            exposed = [k for k in same if snapshot.is_table_exposed(k)] or same
            msg = f"Table `{name}` exists in several schemas; the query must say which."
            add_once(out, seen, "AMBIGUOUS_TABLE", name, msg, f"Write {' or '.join(exposed)}.")
            continue
        if info is None:
            exposed = sorted(
                t
                for t in snapshot.tables
                if snapshot.is_table_exposed(t) and not rules.table_blocked(snapshot, t)
            )
            close = difflib.get_close_matches(name, exposed, n=3, cutoff=0.5)
            hint = f"Did you mean {', '.join(close)}? " if close else ""
            hint += f"Exposed tables: {', '.join(exposed[:30])}."
            if not db and (foreign := name_hint(name)):
                hint = foreign  # Oracle's DUAL
            add_once(out, seen, "UNKNOWN_TABLE", shown, f"Table `{shown}` does not exist.", hint)
            continue
        if not snapshot.is_table_exposed(key):
            add_once(out, seen, "TABLE_NOT_ALLOWED", key, f"Table `{key}` is not exposed to Code Mode.")
            continue
        expected_schema = (info.schema or rules.traits.default_schema).lower()
        if db and db != expected_schema:
            add_once(
                out,
                seen,
                "TABLE_NOT_ALLOWED",
                shown,
                f"`{shown}` names `{name}` through schema `{db}`; "
                f"the exposed table lives in `{expected_schema}`.",
            )
            continue
        if catalog and catalog != snapshot.database.lower():
            add_once(out, seen, "TABLE_NOT_ALLOWED", shown, f"`{shown}` names another catalog (`{catalog}`).")
            continue
        known.add(key)
    ctx.tables = known
    return out
