"""How sqlmode's PostgreSQL sessions connect: the driver's URL and the search path they share."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from ..config import Settings

__all__ = ["asyncpg_dsn", "search_path"]


def asyncpg_dsn(url: str) -> str:
    """The URL as asyncpg wants it: ``postgresql://`` without a ``+driver`` suffix."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    return urlunsplit(parts._replace(scheme="postgresql" if scheme in ("postgres", "postgresql") else scheme))


def search_path(settings: Settings) -> dict[str, str]:
    """The ``search_path`` startup parameter of every session: the configured schemas, if any.

    Unqualified names in queries resolve in the reflected schemas only, whatever the role's default
    (the analyzer refuses a bare name that several of them have: AMBIGUOUS_TABLE); the reflection
    uses it too, so that ``format_type`` qualifies a type exactly when a query has to.
    """
    schemas = settings.database.schemas
    if not schemas:
        return {}
    return {"search_path": ", ".join('"' + s.replace('"', '""') + '"' for s in schemas)}
