"""The one registry of analyzer violation codes: code -> (summary, default hint).

Codes are stable API: clients and admins match on them, and the README table is
generated from this dict. Add codes; never rename or reuse one.
"""

from __future__ import annotations

from ..models import Violation

VIOLATION_CODES: dict[str, tuple[str, str]] = {
    # -- reading the code ---------------------------------------------------------------
    "EMPTY_QUERY": (
        "The code contains no SQL statement.",
        "Send exactly one SELECT query.",
    ),
    "QUERY_TOO_LARGE": (
        "The code is longer or more deeply nested than the analyzer accepts.",
        "Shorten the query: move repeated logic into a CTE and drop unused parts.",
    ),
    "PARSE_ERROR": (
        "The SQL could not be parsed in the database's dialect.",
        "Fix the syntax named in the message; write plain SQL for this database's dialect.",
    ),
    "MULTIPLE_STATEMENTS": (
        "More than one statement was sent.",
        "Send exactly one SELECT query, without a second statement after a semicolon.",
    ),
    "PARSER_DISAGREEMENT": (
        "The database's own parser reads the code differently from the analyzer.",
        "Rewrite the query without unusual quoting, comments or escapes.",
    ),
    "ANALYSIS_FAILED": (
        "The analyzer could not fully understand the query, so it is refused.",
        "Simplify the query; the analyzer refuses what it cannot fully understand.",
    ),
    # -- what kind of statement ---------------------------------------------------------
    "WRITE_NOT_ALLOWED": (
        "The statement changes data (INSERT, UPDATE) and writes are disabled, "
        "or it is a MERGE, which is never allowed.",
        "Only read-only SELECT queries are allowed; rewrite as a SELECT.",
    ),
    "DELETE_NOT_ALLOWED": (
        "The statement deletes data, and deletes are disabled.",
        "Only read-only SELECT queries are allowed; rewrite as a SELECT.",
    ),
    "STATEMENT_NOT_ALLOWED": (
        "The statement is not a query (DDL, session, transaction, file or admin command).",
        "Send one SELECT query (WITH, UNION and VALUES are fine); nothing else is run.",
    ),
    "OPAQUE_STATEMENT": (
        "The statement is one the analyzer cannot look inside, so it is refused.",
        "Send one plain SELECT query.",
    ),
    "NESTED_WRITE": (
        "A data-changing statement is nested inside the query (for example in a CTE).",
        "Remove INSERT/UPDATE/DELETE/MERGE from CTEs and subqueries; only reads are allowed.",
    ),
    "SELECT_INTO": (
        "SELECT ... INTO creates a table.",
        "Remove the INTO clause; the result is returned to you directly.",
    ),
    "LOCKING_CLAUSE": (
        "FOR UPDATE / FOR SHARE takes row locks.",
        "Remove the FOR UPDATE / FOR SHARE clause.",
    ),
    "UNSUPPORTED_SYNTAX": (
        "The query uses a construct that is not allowed in Code Mode.",
        "Rewrite the query with plain SELECT syntax; inline values instead of parameters.",
    ),
    # -- what it touches ----------------------------------------------------------------
    "UNKNOWN_TABLE": (
        "The query names a table that does not exist in the exposed schema.",
        "Use only tables listed in the schema resource.",
    ),
    "TABLE_BLOCKED": (
        "The query reads a table that is blocked by policy.",
        "Remove the blocked table; it cannot be queried in any form.",
    ),
    "TABLE_NOT_ALLOWED": (
        "The table exists but is not exposed to Code Mode, or is named through another schema or catalog.",
        "Use only tables listed in the schema resource, named as it names them.",
    ),
    "AMBIGUOUS_TABLE": (
        "Several schemas have a table of this name, and the query does not say which.",
        "Name the table with its schema, as the schema resource does (e.g. sales.orders).",
    ),
    "UNKNOWN_COLUMN": (
        "The query names a column that does not exist in the tables it reads.",
        "Check the column names in the schema resource.",
    ),
    "COLUMN_BLOCKED": (
        "The query reads or filters on a column that is blocked by policy.",
        "Remove the blocked column everywhere (SELECT, WHERE, JOIN, GROUP BY, ORDER BY) and "
        "list the columns you need instead of * or whole-row values.",
    ),
    "FILE_ACCESS": (
        "The query reads a file or URL instead of a table.",
        "Query only the tables in the schema resource.",
    ),
    "INTROSPECTION_BLOCKED": (
        "The query reads system catalogs or database metadata.",
        "Call describe_schema (or read the schema resource) for the tables and columns, instead of "
        "information_schema, pg_catalog or duckdb_* functions.",
    ),
    "FUNCTION_NOT_ALLOWED": (
        "The query calls a function outside the analyst allowlist.",
        "Use standard aggregate, window, math, string, date, JSON and array functions only.",
    ),
    "FUNCTION_ARGUMENT_LIMIT": (
        "A generator, padding or builder expression is unbounded or would build too large a value "
        "(nested builders multiply).",
        "Use literal bounds that produce at most the allowed number of rows, characters or list elements.",
    ),
    # -- limits -------------------------------------------------------------------------
    "TOO_DEEP": (
        "Subqueries are nested deeper than the configured max_depth.",
        "Flatten nested subqueries into CTEs (WITH ...) or joins.",
    ),
    "TOO_MANY_JOINS": (
        "The query joins more tables than the configured max_joins.",
        "Join fewer tables: aggregate in a CTE first, or split the question.",
    ),
    "TOO_MANY_FIELDS": (
        "The query returns more columns than the configured max_fields.",
        "Select only the columns you need instead of *.",
    ),
    "TOO_COMPLEX": (
        "The query's complexity score is above the configured max_complexity.",
        "Simplify: fewer joins, subqueries and window functions, or answer in smaller steps.",
    ),
    "UNBOUNDED_RECURSION": (
        "A recursive CTE has nothing that stops the recursion.",
        "Add a WHERE condition to the recursive part (for example WHERE n < 100), or a LIMIT.",
    ),
    "CARTESIAN_PRODUCT": (
        "Two tables are combined without a join condition (a cartesian product).",
        "Add a JOIN ... ON condition linking the tables; if every combination is intended, write CROSS JOIN.",
    ),
    # -- engine confirmation (the rendering and the database checked against the analysis) --
    "ROUND_TRIP_MISMATCH": (
        "The normalized SQL does not parse back to the query that was analyzed.",
        "Rewrite the query without unusual comments, quoting or escapes; what runs must be what was checked.",
    ),
    "ENGINE_MISMATCH": (
        "The database's own parse or plan touches a table, column or function the analyzer did not see.",
        "Query the tables in the schema resource directly, without schema prefixes; if the query "
        "is plain, tell an administrator (a view or search_path may expose more than intended).",
    ),
    "ENGINE_REFUSED": (
        "The database could not describe the query without running it.",
        "Fix the problem the database reported; use only the tables, columns and functions you are shown.",
    ),
    "FUNCTION_VOLATILE": (
        "The database's catalog marks a called function as volatile or as having side effects.",
        "Remove the function; an administrator may list a harmless one in functions.allow_volatile.",
    ),
    "FUNCTION_SHADOWED": (
        "A function name resolves to a user-defined function that shadows a built-in one.",
        "Remove the call; an administrator must allow user-defined functions by name "
        "(code_mode.functions.allow).",
    ),
    "ESTIMATED_ROWS_TOO_HIGH": (
        "The database estimates the query handles more rows than code_mode.max_estimated_rows.",
        "Filter earlier (WHERE on dates or ids), join on keys, or aggregate before joining.",
    ),
    "ESTIMATED_COST_TOO_HIGH": (
        "The database's cost estimate for the query is above code_mode.max_estimated_cost.",
        "Filter earlier (WHERE on dates or ids), join on keys, or aggregate before joining.",
    ),
}


def violation(code: str, message: str | None = None, hint: str | None = None) -> Violation:
    """A Violation for a registered code, defaulting message and hint from the registry."""
    summary, default_hint = VIOLATION_CODES[code]
    return Violation(code=code, message=message or summary, hint=hint if hint is not None else default_hint)


class Refusal(Exception):
    """Raised inside the analyzer to stop early with one or more violations."""

    def __init__(self, *violations: Violation):
        super().__init__(violations[0].message if violations else "refused")
        self.violations = list(violations)
