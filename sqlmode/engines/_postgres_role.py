"""The role PostgreSQL queries run as, and the proof that its grants match the config.

sqlmode never trusts its own reading of a query to keep blocked data out: on PostgreSQL every
query, and the EXPLAIN of engine confirmation, runs as a role the database itself stops at the
blocked tables and columns. That role is either the login role of ``database.url`` (when it
already passes the proof below: the strongest set-up, nothing in the session can widen it) or
``database.reader_role``, switched to with ``SET LOCAL ROLE`` inside each READ ONLY transaction.

A switched role can be undone from inside a query: ``set_config('role', ..., true)`` changes
the current role, and a function that runs SQL from a string (``ts_stat``, ``query_to_xml``)
then reads with the login role's rights. So the proof, ONE catalog query run at start-up and at
every schema refresh, requires that the effective role:

- reads no blocked table or column, and no table outside ``[[database.tables]]``;
- can read every exposed column (else queries the analyzer passes would fail);
- is not superuser and has no BYPASSRLS (row-level security policies apply to it);
- cannot execute ``pg_catalog.set_config`` (``sqlmode db grants --apply`` revokes it from PUBLIC);
- can execute no SECURITY DEFINER function and no function with a ``role`` or
  ``session_authorization`` setting (either runs with someone else's rights);
- can read no definer-rights view (nor materialized view) whose definition reaches a blocked
  item, through other views too.

What it does not cover, by design: a SECURITY INVOKER function written by the administrator
that runs ``SET ROLE`` from a string (only a role logged in as the reader is immune: its session
user can become no one else), and data copied out of blocked columns into exposed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..schema.snapshot import SchemaSnapshot

__all__ = ["PROOF_SQL", "Problem", "describe_problems", "fix_for", "proof_params", "prove_role"]

# $1 role; $2 bare blocked table names (lower-case, matched in every schema, reflected or not);
# $3/$4/$5 blocked (schema, table, column) exactly; $6/$7 reflected tables that are blocked or
# not in [[database.tables]] (schema, table) exactly; $8/$9 exposed (schema,
# table) exactly, whose every column but the blocked ones must be readable. Exact names go through
# the catalog's indexes; tables rather than columns keep the parameters small (1,000 tables).
PROOF_SQL = r"""
WITH RECURSIVE
r AS (SELECT oid, rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1),
rel AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.reloptions
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
),
btab AS (
  SELECT rel.oid, rel.nspname, rel.relname FROM rel WHERE lower(rel.relname) = ANY($2::text[])
  UNION
  SELECT rel.oid, rel.nspname, rel.relname
  FROM rel JOIN unnest($6::text[], $7::text[]) AS h(s, t) ON rel.nspname = h.s AND rel.relname = h.t
),
bcol AS (
  SELECT c.oid, b.s AS nspname, b.t AS relname, a.attnum, a.attname
  FROM unnest($3::text[], $4::text[], $5::text[]) AS b(s, t, c)
  JOIN pg_catalog.pg_namespace n ON n.nspname = b.s
  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = b.t
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = b.c AND NOT a.attisdropped
),
-- Definer-rights views and materialized views the role can read.
dview AS (
  SELECT v.oid, v.nspname, v.relname FROM rel v, r
  WHERE v.relkind IN ('v', 'm')
    AND (v.relkind = 'm' OR NOT EXISTS (
          SELECT FROM unnest(v.reloptions) AS o
          WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1',
                             'security_invoker=yes')))
    AND has_schema_privilege(r.oid, (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = v.nspname),
                             'USAGE')
    AND (has_table_privilege(r.oid, v.oid, 'SELECT') OR has_any_column_privilege(r.oid, v.oid, 'SELECT'))
),
-- What each of them reads, through other views (pg_depend of the _RETURN rules).
reads(top, ref, subid, depth) AS (
  SELECT rw.ev_class, d.refobjid, d.refobjsubid, 1
  FROM dview JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = dview.oid
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> rw.ev_class
  UNION
  SELECT reads.top, d.refobjid, d.refobjsubid, reads.depth + 1
  FROM reads
  JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = reads.ref
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> rw.ev_class
  WHERE reads.depth < 32
)
SELECT 'superuser', $1::text FROM r WHERE r.rolsuper
UNION ALL SELECT 'bypassrls', $1 FROM r WHERE r.rolbypassrls
UNION ALL SELECT 'no_role', $1 WHERE NOT EXISTS (SELECT FROM r)
UNION ALL
SELECT 'set_config', 'pg_catalog.set_config(text, text, boolean)' FROM r
WHERE has_function_privilege(r.oid, 'pg_catalog.set_config(text, text, boolean)', 'EXECUTE')
UNION ALL
SELECT 'blocked_table', quote_ident(b.nspname) || '.' || quote_ident(b.relname)
FROM btab b, r
WHERE has_table_privilege(r.oid, b.oid, 'SELECT') OR has_any_column_privilege(r.oid, b.oid, 'SELECT')
UNION ALL
SELECT 'blocked_column',
       quote_ident(b.nspname) || '.' || quote_ident(b.relname) || '.' || quote_ident(b.attname)
FROM bcol b, r WHERE has_column_privilege(r.oid, b.oid, b.attnum, 'SELECT')
UNION ALL
SELECT 'not_granted',
       quote_ident(e.s) || '.' || quote_ident(e.t) || COALESCE('.' || quote_ident(a.attname::text), '')
FROM unnest($8::text[], $9::text[]) AS e(s, t)
CROSS JOIN r
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = e.s
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = e.t
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE (c.oid IS NULL
       OR NOT has_schema_privilege(r.oid, n.oid, 'USAGE')
       OR NOT (has_table_privilege(r.oid, c.oid, 'SELECT')
               OR has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT')))
  AND NOT EXISTS (SELECT FROM bcol WHERE bcol.oid = c.oid AND bcol.attnum = a.attnum)
UNION ALL
SELECT CASE WHEN p.prosecdef THEN 'security_definer' ELSE 'sets_role' END,
       p.oid::regprocedure::text
FROM pg_catalog.pg_proc p, r
WHERE (p.prosecdef OR p.proconfig IS NOT NULL AND EXISTS (
        SELECT FROM unnest(p.proconfig) AS o
        WHERE lower(o) LIKE 'role=%' OR lower(o) LIKE 'session\_authorization=%'))
  AND has_schema_privilege(r.oid, p.pronamespace, 'USAGE')
  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
UNION ALL
SELECT DISTINCT 'definer_view',
       quote_ident(v.nspname) || '.' || quote_ident(v.relname) || ' reads ' ||
       COALESCE(quote_ident(bc.nspname) || '.' || quote_ident(bc.relname) || '.' || quote_ident(bc.attname),
                quote_ident(bt.nspname) || '.' || quote_ident(bt.relname))
FROM dview v
JOIN reads ON reads.top = v.oid
LEFT JOIN btab bt ON bt.oid = reads.ref
-- subid 0 is a whole-row reference (or no column at all): it reaches every column.
LEFT JOIN bcol bc ON bc.oid = reads.ref AND (reads.subid = bc.attnum OR reads.subid = 0)
WHERE bt.oid IS NOT NULL OR bc.oid IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the role may not serve queries: a stable ``kind`` and the catalog item it names."""

    kind: str
    item: str


def proof_params(role: str, snapshot: SchemaSnapshot) -> list[Any]:
    """The bind parameters of :data:`PROOF_SQL` for ``role`` under ``snapshot``'s blocks."""
    blocked: list[tuple[str, str, str]] = []
    hidden: list[tuple[str, str]] = []
    exposed: list[tuple[str, str]] = []
    for key, t in sorted(snapshot.tables.items()):
        schema = t.schema or "public"
        if not snapshot.is_table_exposed(key):
            hidden.append((schema, t.name))
            continue
        exposed.append((schema, t.name))
        blocked += [(schema, t.name, c.name) for c in t.columns if snapshot.is_column_blocked(key, c.name)]
    return [
        role,
        # A qualified key (schema.name: several schemas hold that name) is covered exactly above.
        sorted(k for k in snapshot.blocked_tables if "." not in k),
        *_columns(blocked, 3),
        *_columns(hidden, 2),
        *_columns(exposed, 2),
    ]


def _columns(rows: list[Any], width: int) -> list[list[str]]:
    """Rows of names as ``width`` parallel lists (one array parameter each)."""
    return [[r[i] for r in rows] for i in range(width)]


_WHAT = {
    "superuser": "is a superuser (it reads everything, grants do not apply)",
    "bypassrls": "bypasses row-level security (BYPASSRLS)",
    "no_role": "does not exist",
    "set_config": "may execute set_config, with which a query can switch back to the login role",
    "blocked_table": "can read the blocked or unlisted table {item}",
    "blocked_column": "can read the blocked column {item}",
    "not_granted": "cannot read the exposed column {item} (queries the analyzer allows would fail)",
    "security_definer": "can execute the SECURITY DEFINER function {item} (it runs with its owner's rights)",
    "sets_role": "can execute the function {item}, which sets a role when called",
    "definer_view": "can read the view {item} with the view owner's rights",
}


def describe_problems(role: str, problems: list[Problem], limit: int = 8) -> str:
    """A sentence per problem (at most ``limit``), naming the role and the item."""
    lines = [f"role {role!r} " + _WHAT.get(p.kind, p.kind + " {item}").format(item=p.item) for p in problems]
    more = len(lines) - limit
    return "; ".join(lines[:limit]) + (f"; and {more} more" if more > 0 else "")


_GRANTS_FIX = frozenset(
    {"set_config", "blocked_table", "blocked_column", "not_granted", "no_role", "superuser", "bypassrls"}
)


def fix_for(problems: list[Problem]) -> str:
    """What the administrator should do about ``problems``."""
    kinds = {p.kind for p in problems}
    fixes = []
    if kinds & _GRANTS_FIX:
        fixes.append("run `sqlmode db grants --apply` as an administrator")
    if "security_definer" in kinds or "sets_role" in kinds:
        fixes.append("REVOKE EXECUTE on the named function from the role and from PUBLIC")
    if "definer_view" in kinds:
        fixes.append(
            "make the named view security_invoker (ALTER VIEW ... SET (security_invoker = true); a "
            "materialized view cannot be: it holds a copy of what it read), or list it in "
            "code_mode.blocked_tables (then `sqlmode db grants` no longer grants it), or REVOKE SELECT "
            "on it from the role and from PUBLIC"
        )
    return "; ".join(fixes)


async def prove_role(conn: Any, role: str, snapshot: SchemaSnapshot) -> list[Problem]:
    """Run :data:`PROOF_SQL` for ``role`` on an asyncpg connection: every problem, or none."""
    rows = await conn.fetch(PROOF_SQL, *proof_params(role, snapshot))
    return [Problem(str(r[0]), str(r[1])) for r in rows]
