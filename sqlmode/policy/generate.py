"""The server layer: Cedar policies generated from the TOML config.

Each config switch becomes one or a few policies with a stable ``@id`` so that a
decision (and the audit log) names the setting that refused a query, e.g.
``server.blocked-table.audit_log`` or ``server.max-depth``. The text is rendered
deterministically, so the policy hash changes exactly when the config does.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import Settings


def cedar_string(value: str) -> str:
    """A Cedar string literal. Cedar escapes are Rust-like: ``\\u{..}``, not ``\\uXXXX``."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _set(items: Iterable[str]) -> str:
    return "[" + ", ".join(cedar_string(i) for i in items) + "]"


def _policy(
    pid: str,
    effect: str,
    action: str,
    *,
    when: str | None = None,
    unless: str | None = None,
    code: str | None = None,
    reason: str,
    hint: str | None = None,
) -> str:
    lines = [f"@id({cedar_string(pid)})"]
    if code:
        lines.append(f"@code({cedar_string(code)})")
    lines.append(f"@reason({cedar_string(reason)})")
    if hint:
        lines.append(f"@hint({cedar_string(hint)})")
    body = f"{effect} (principal, {action}, resource)"
    if when:
        body += f"\nwhen {{ {when} }}"
    if unless:
        body += f"\nunless {{ {unless} }}"
    lines.append(body + ";")
    return "\n".join(lines)


def _action(*names: str) -> str:
    if len(names) == 1:
        return f'action == Action::"{names[0]}"'
    return "action in [" + ", ".join(f'Action::"{n}"' for n in names) + "]"


def server_policies(settings: Settings) -> str:
    """Render the config-generated policies for ``settings`` as Cedar text."""
    cm = settings.code_mode
    cp = cm.cedar_policies
    out: list[str] = ["// Generated from the config by sqlmode; edit the config, not this text."]

    # Writes and deletes: nothing permits them unless the config does, and the
    # explicit forbids name the switch to flip, so a refusal explains itself.
    if cp.read_only_mode:
        both = " allow_writes is set, but read_only_mode wins." if cm.allow_writes else ""
        out.append(
            _policy(
                "server.read-only-mode",
                "forbid",
                _action("write", "delete"),
                code="WRITE_NOT_ALLOWED",
                reason=f"This server is read-only (code_mode.cedar_policies.read_only_mode = true).{both}",
                hint="Only SELECT queries can run here.",
            )
        )
    else:
        out.append(_write_switch(cm.allow_writes, "write", "WRITE_NOT_ALLOWED", "code_mode.allow_writes"))
        deletes = cm.allow_writes and cm.allow_deletes
        key = "code_mode.allow_deletes" if cm.allow_writes else "code_mode.allow_writes"
        out.append(_write_switch(deletes, "delete", "DELETE_NOT_ALLOWED", key))

    # Names as config writes them, lower case, bare or `schema.table`: context.table_names carries
    # every table under both forms (policy/request.py).
    for table in sorted({b.table_entry for b in cm.blocked_table_names}):
        out.append(
            _policy(
                f"server.blocked-table.{table}",
                "forbid",
                "action",
                when=f"context.table_names.contains({cedar_string(table)})",
                code="TABLE_BLOCKED",
                reason=f"Table {table} is blocked by the server configuration.",
                hint=f"Answer the question without {table}; it cannot be read or changed.",
            )
        )
    for col in sorted({f"{b.table_entry}.{b.column}" for b in cm.blocked_field_names}):
        out.append(
            _policy(
                f"server.blocked-field.{col}",
                "forbid",
                "action",
                when=f"context.column_names.contains({cedar_string(col)})",
                code="COLUMN_BLOCKED",
                reason=f"Column {col} is blocked by the server configuration.",
                hint=f"Leave {col} out everywhere (select list, WHERE, JOIN, ORDER BY); "
                "list other columns explicitly instead of using *.",
            )
        )

    if cp.block_introspection:
        out.append(
            _policy(
                "server.block-introspection",
                "forbid",
                "action",
                when="context.catalog",
                code="INTROSPECTION_BLOCKED",
                reason="System catalogs (information_schema, pg_catalog, duckdb_*) are blocked.",
                hint="Call describe_schema (or read the schema resource) instead of querying the catalog.",
            )
        )

    limits = [
        ("server.max-depth", "depth", cp.max_depth, "TOO_DEEP", "nesting depth",
         "code_mode.cedar_policies.max_depth", "Use CTEs or joins instead of nested subqueries."),
        ("server.max-fields", "fields", cp.max_fields, "TOO_MANY_FIELDS", "number of selected fields",
         "code_mode.cedar_policies.max_fields", "Select fewer columns; name only the ones the answer needs."),
        ("server.max-joins", "joins", cm.max_joins, "TOO_MANY_JOINS", "number of joins",
         "code_mode.max_joins", "Join fewer tables; aggregate in a CTE first."),
        ("server.max-complexity", "complexity", cm.max_complexity, "TOO_COMPLEX",
         "complexity score", "code_mode.max_complexity", "Split the question into simpler queries."),
    ]  # fmt: skip
    for pid, attr, limit, code, what, key, hint in limits:
        out.append(
            _policy(
                pid,
                "forbid",
                "action",
                when=f"context.{attr} > {int(limit)}",
                code=code,
                reason=f"The query's {what} exceeds the limit of {limit} ({key}).",
                hint=hint,
            )
        )
    out.append(
        _policy(
            "server.max-rows",
            "forbid",
            _action("read"),
            when=f"context.row_limit > {int(cm.max_rows)}",
            code="TOO_MANY_ROWS",
            reason=f"The query asks for more than {cm.max_rows} rows (code_mode.max_rows).",
            hint=f"Use LIMIT {cm.max_rows} or less, or aggregate.",
        )
    )

    writes_on = cm.allow_writes and not cp.read_only_mode
    out.extend(_table_operations(settings, writes_on, writes_on and cm.allow_deletes))
    return "\n\n".join(out) + "\n"


def _table_name(name: str) -> str:
    # `[catalog.]schema.table` keeps `schema.table`: the context names each table that way too
    # (policy/request.py), so `sales.orders` does not also forbid a `public.orders`.
    return ".".join(name.lower().split(".")[-2:])


def _write_switch(on: bool, op: str, code: str, key: str) -> str:
    if on:
        return _policy(
            f"server.permit-{op}",
            "permit",
            _action(op),
            reason=f"{op.title()}s are allowed by the config ({key} = true).",
        )
    return _policy(
        f"server.{op}s-disabled",
        "forbid",
        _action(op),
        code=code,
        reason=f"{op.title()}s are disabled ({key} = false).",
        hint="Only SELECT queries can run here." if op == "write" else "DELETE statements cannot run here.",
    )


def _table_operations(settings: Settings, writes: bool, deletes: bool) -> list[str]:
    """Per-table operations (``database.tables[].operations``) as allowlists.

    Only when tables are listed: then a write or delete may target only tables that
    list that operation, and a table without "read" may not be read by any statement.
    Write and delete lists are generated only when the global switch allows them.
    """
    tables = settings.database.tables
    if not tables:
        return []
    ops = {_table_name(t.name): set(t.operations) for t in tables}
    out: list[str] = []
    unreadable = sorted(n for n, o in ops.items() if "read" not in o)
    if unreadable:
        out.append(
            _policy(
                "server.table-operations.read",
                "forbid",
                "action",
                # Read but not written: a write-only table may be the target of an INSERT.
                when=" || ".join(
                    f"(context.table_names.contains({q}) && !context.targets.contains({q}))"
                    for q in map(cedar_string, unreadable)
                ),
                code="TABLE_OPERATION_NOT_ALLOWED",
                reason="The query reads a table that does not allow reads (database.tables[].operations): "
                + ", ".join(unreadable)
                + ".",
                hint="Leave out " + ", ".join(unreadable) + ".",
            )
        )
    for op in [op for op, on in (("write", writes), ("delete", deletes)) if on]:
        allowed = sorted(n for n, o in ops.items() if op in o)
        out.append(
            _policy(
                f"server.table-operations.{op}",
                "forbid",
                _action(op),
                # An empty set literal does not type-check in Cedar, so "no table" is unconditional.
                unless=f"{_set(allowed)}.containsAll(context.targets)" if allowed else None,
                code="TABLE_OPERATION_NOT_ALLOWED",
                reason=(
                    f"The statement {'writes to' if op == 'write' else 'deletes from'} a table that does not "
                    f"allow {op}s (database.tables[].operations); allowed: "
                    + (", ".join(allowed) if allowed else "none")
                    + "."
                ),
                hint=f"Only these tables accept {op}s: " + (", ".join(allowed) if allowed else "none") + ".",
            )
        )
    return out


__all__ = ["cedar_string", "server_policies"]
