"""DuckDB file failures (locked, not a database, no permission) as one clear error with a hint."""

from __future__ import annotations

from ..dberrors import root_causes
from ..errors import DatabaseUnavailableError, SqlmodeError

__all__ = ["explain_duckdb_error"]


def explain_duckdb_error(e: BaseException, url: str, doing: str) -> SqlmodeError:
    path = url.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path
    for x in root_causes(e):
        text = str(x)
        if "Could not set lock" in text or "Conflicting lock" in text:
            return DatabaseUnavailableError(
                f"could not {doing} the DuckDB file {path}: another process has it open for writing",
                code="DATABASE_UNAVAILABLE",
                hint="Close the program writing to it (DuckDB allows one writer or many readers); retry.",
            )
        if "not a valid DuckDB database" in text or "invalid magic" in text.lower():
            return DatabaseUnavailableError(
                f"{path} is not a DuckDB database file",
                code="DATABASE_URL_INVALID",
                hint="Point database.url (or database.path) at a .duckdb file.",
            )
        if isinstance(x, PermissionError) or "Permission denied" in text:
            return DatabaseUnavailableError(
                f"could not {doing} the DuckDB file {path}: permission denied",
                code="DATABASE_UNAVAILABLE",
                hint="Give this user read access to the file (and write access to its folder for sample-db).",
            )
    if isinstance(e, SqlmodeError):
        return e
    return DatabaseUnavailableError(
        f"could not {doing} the DuckDB file {path}: {type(e).__name__}: {e}",
        hint="Check database.url / database.path (run with -v for details).",
    )
