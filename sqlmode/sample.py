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

from .config import Settings, bundled_path
from .dberrors import explain_db_error
from .engines import engine_for_url
from .engines.postgres import check_url
from .errors import SqlmodeError

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


def build_sample_duckdb(
    path: str | os.PathLike[str], scale: float = 1, seed: int | None = None, *, force: bool = False
) -> Path:
    """Build (or rebuild, atomically) the sample warehouse as a DuckDB file; returns its path.

    Refuses (SAMPLE_TARGET_NOT_EMPTY) to replace a file it did not build unless ``force``.
    """
    gen = generator()
    try:
        return gen.build_duckdb(
            path, scale=scale, seed=gen.DEFAULT_SEED if seed is None else seed, force=force
        )
    except gen.TargetNotEmptyError as e:
        raise SqlmodeError(
            f"{e}: refusing to replace it with the sample warehouse",
            code="SAMPLE_TARGET_NOT_EMPTY",
            hint="Give another file (--path new.duckdb), or --force to replace this file and all it holds.",
        ) from None
    except OSError as e:
        raise SqlmodeError(
            f"could not write the sample warehouse to {path}: {e.strerror or e}",
            code="SAMPLE_TARGET_NOT_EMPTY" if isinstance(e, IsADirectoryError) else "BAD_INPUT",
            hint="Choose a file in a folder you can write to (--path).",
        ) from None


async def load_sample_postgres(
    url: str, scale: float = 1, seed: int | None = None, schema: str = "public", *, force: bool = False
) -> None:
    """Load the sample warehouse into PostgreSQL ``schema``: only when it is empty or an earlier load.

    Refuses (SAMPLE_TARGET_NOT_EMPTY) a schema holding anything else unless ``force``, which
    replaces only the sample's own tables. Connection failures become one clear error with a hint.
    """
    check_url(url)
    describe_target = engine_for_url(url).describe_target
    gen = generator()
    try:
        await gen.load_postgres(
            url, scale=scale, seed=gen.DEFAULT_SEED if seed is None else seed, schema=schema, force=force
        )
    except gen.TargetNotEmptyError as e:
        raise SqlmodeError(
            f"{describe_target(url)}: {e}: refusing to load the sample warehouse there",
            code="SAMPLE_TARGET_NOT_EMPTY",
            hint=(
                "Load it into a new, empty database (CREATE DATABASE sqlmode_sample;), or add --force to "
                "replace only the sample's tables (customers, products, orders, ...) in this schema."
            ),
        ) from None
    except SqlmodeError:
        raise
    except Exception as e:
        # Not only connection failures: a view of someone else's on a sample table makes DROP fail.
        sqlstate = getattr(e, "sqlstate", None)
        if sqlstate == "2BP01":
            raise SqlmodeError(
                f"{describe_target(url)}: other objects depend on the sample's tables: "
                f"{getattr(e, 'message', e)} ({getattr(e, 'detail', '')})",
                code="SAMPLE_TARGET_NOT_EMPTY",
                hint="Nothing was changed. Load the sample into a new, empty database instead.",
            ) from None
        raise explain_db_error(e, url, doing="load the sample into") from e


def long_tail_sql(dialect: str) -> str:
    """The SQL answering the sample warehouse's long-tail question (see sample_db/README.md)."""
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
    if not db.build_sample or not engine_for_url(db.url).traits.builds_sample_file:
        return False
    if db.duckdb_path == ":memory:":
        return False
    path = settings.resolve_path(db.duckdb_path)
    if path.exists():
        return False
    build_sample_duckdb(path, scale=db.sample_scale)
    return True
