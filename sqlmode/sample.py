"""The bundled sample warehouse: build it, load it into Postgres, and the demo queries.

The generator lives in ``sample_db/generate.py`` (bundled as ``sqlmode/_bundled/sample_db`` in the
wheel). It is not a Python package, so it is loaded by path, once per process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Literal

from .config import Settings, bundled_path

__all__ = [
    "blocked_demo_sql",
    "build_sample_duckdb",
    "ensure_sample_db",
    "generator",
    "load_sample_postgres",
    "long_tail_sql",
]

_MODULE_NAME = "sqlmode._sample_generate"


@cache
def generator() -> ModuleType:
    """The loaded ``sample_db/generate.py`` module."""
    path = bundled_path("sample_db") / "generate.py"
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only on a broken installation
        raise ImportError(f"cannot load the sample generator from {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so that dataclasses/pickling inside the module can find it.
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def build_sample_duckdb(path: str | os.PathLike[str], scale: float = 1, seed: int | None = None) -> Path:
    """Build (or rebuild, atomically) the sample warehouse as a DuckDB file; returns its path."""
    gen = generator()
    return gen.build_duckdb(path, scale=scale, seed=gen.DEFAULT_SEED if seed is None else seed)


async def load_sample_postgres(
    url: str, scale: float = 1, seed: int | None = None, schema: str = "public"
) -> None:
    """Load the sample warehouse into PostgreSQL, replacing the sample tables in ``schema``."""
    gen = generator()
    await gen.load_postgres(url, scale=scale, seed=gen.DEFAULT_SEED if seed is None else seed, schema=schema)


def long_tail_sql(dialect: Literal["duckdb", "postgres"]) -> str:
    """The SQL answering DESIGN.md's long-tail question on the sample warehouse."""
    queries: dict[str, str] = generator().LONG_TAIL_SQL
    try:
        return queries[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {sorted(queries)}") from None


def blocked_demo_sql() -> str:
    """A query the sample policy rejects: it reads the blocked column customers.ssn."""
    return str(generator().BLOCKED_DEMO_SQL)


def ensure_sample_db(settings: Settings) -> bool:
    """Build the sample DuckDB file if the config asks for it and it is missing; True if it built.

    Safe across processes: each builder writes its own temporary file and renames it into place,
    so concurrent first starts at worst build twice and readers never see a partial file.
    """
    db = settings.database
    if not db.build_sample or db.dialect != "duckdb" or db.duckdb_path == ":memory:":
        return False
    path = settings.resolve_path(db.duckdb_path)
    if path.exists():
        return False
    build_sample_duckdb(path, scale=db.sample_scale)
    return True
