"""The engine seam: what the rest of sqlmode may ask a database engine, and the registry.

Two kinds of answers:

- :class:`EngineTraits`, pure facts (names, default schema, case rules...), cheap to read
  anywhere; the analyzer branches on these, never on an engine's name;
- the :class:`Engine` protocol's methods, which do things (parse with the engine's own
  parser, open an executor, write grant scripts...).

This module is the low half of the seam, the lowest layer in docs/architecture.md (config
validates ``database.url`` against the registry; schema and analyze ask engines through it), so
it imports nothing of ours but errors and models. The engine modules themselves (engines/postgres.py,
engines/duckdb.py) build on the engine-independent execute/ layer and register here when the
``sqlmode.engines`` package is imported (always before this module, by Python's import order).
Look an engine up with :func:`engine_for_url` / :func:`engine_named`; see engines/__init__.py
for how to add one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, SqlmodeError
from ..models import QueryResult, Violation

# ``sqlmode.config.Settings``. Not imported: config asks the registry here which engine serves a
# URL, so this module sits below config and imports nothing of ours but errors and models.
Settings = Any

__all__ = [
    "BoundAccess",
    "Engine",
    "EngineTraits",
    "Executor",
    "NativeSyntaxError",
    "NativeView",
    "accepted_urls",
    "engine_for_url",
    "engine_named",
    "file_engine",
    "is_file_url",
    "known_schemes",
    "memory_url",
    "path_of_url",
    "register_engine",
    "unregister_engine",
    "url_for_path",
    "url_scheme",
]


@dataclass(frozen=True, slots=True)
class EngineTraits:
    """Pure facts about one engine's SQL, for code that must not know engine names."""

    #: Registry key and the ``dialect`` reported in results ("postgres", "duckdb", ...).
    name: str
    #: Human name for messages ("PostgreSQL").
    display_name: str
    #: What a URL for it looks like, for messages ("postgresql://user@host:5432/db").
    url_example: str
    #: sqlglot's dialect name for parsing and rendering.
    sqlglot_dialect: str
    #: The schema an unqualified table name lives in.
    default_schema: str
    #: Schemas that hold the engine's catalogs, not data.
    system_schemas: frozenset[str]
    #: Schemas that may prefix a call to a built-in function (``pg_catalog.lower(x)``).
    system_function_schemas: frozenset[str]
    #: Whether a quoted mixed-case identifier is a different name from its lower-case form
    #: (PostgreSQL: ``"C"`` is not ``c``; DuckDB: case-insensitive always).
    quoted_identifiers_case_sensitive: bool
    #: Default names of VALUES columns, as format strings over ``i`` (0-based) and ``n`` (1-based).
    values_column_names: tuple[str, ...] = ("column{n}",)
    #: Operators the engine parses into function nodes; the function allowlist admits the
    #: node classes these samples parse to.
    operator_samples: tuple[str, ...] = ()
    #: Whether ``PIVOT ... ON col`` without a value list is expanded by asking the data
    #: (the engine's own PIVOT, which otherwise decides its output columns at run time).
    pivot_without_values: bool = False
    #: Whether ``s.*`` may expand a struct column ``s`` into its fields (DuckDB) when no source
    #: is called ``s``; elsewhere ``s.*`` names a source only.
    struct_star: bool = False
    #: How the engine's catalog names a function that may change state, for messages.
    volatile_wording: str = "is VOLATILE"
    #: What to write instead of a volatile built-in an analyst commonly reaches for (lower-case
    #: name -> hint): ``random`` for a sample becomes the engine's own sampling clause.
    volatile_alternatives: Mapping[str, str] = field(default_factory=dict)
    #: Other SQL dialects' functions the engine lacks, by the name its "does not exist" error gives
    #: (lower-case name -> what to write here instead): the ENGINE_REFUSED hint says so.
    missing_functions: Mapping[str, str] = field(default_factory=dict)
    #: Patterns (regular expressions) of the engine's planning errors that mostly mean another
    #: dialect's habit, with what to write instead: the ENGINE_REFUSED hint says so.
    error_hints: tuple[tuple[str, str], ...] = ()
    #: Names the engine's parser or plan gives to calls the analyzer knows by another name
    #: ("count_star" -> "count"; "pg_catalog.btrim" -> "trim"), bare or schema-qualified.
    call_aliases: Mapping[str, str] = field(default_factory=dict)
    #: Whether the plan's cost estimate means something to a reader (shown in the explanation).
    plan_cost_is_meaningful: bool = False
    #: Run once before the analyzer first parses or renders in this engine's sqlglot dialect
    #: (a fix to sqlglot's generator, imported only then: sqlglot's dialects are slow to import).
    sqlglot_setup: Callable[[], None] | None = None
    #: Whether ``database.schemas`` selects schemas to expose (else the default schema only).
    exposes_schemas: bool = False
    #: Whether the engine's query connections resolve only the default schema by a bare name (no
    #: search path): the normalized code then names the schema of every table outside it.
    qualifies_other_schemas: bool = False
    #: Whether a reader needs the privilege on every column a ``*`` expands to, also in a
    #: subquery or CTE whose readers name fewer (PostgreSQL's column grants): the normalized code
    #: then writes such a star over a table with blocked columns as the columns the query reads.
    spells_out_stars: bool = False
    #: Whether the engine's plan of a CTE it computes once, whole (AS MATERIALIZED or named more
    #: than once), reads every column the CTE's ``*`` names (PostgreSQL's CTE scan): such a star
    #: is then written out as the columns its readers name where ``spells_out_stars``, and read
    #: whole where it cannot be (or the engine does not write stars out). False where the engine
    #: check follows each column of it to its readers (DuckDB's lineage). A recursive CTE's star
    #: is read whole on every engine.
    materialized_ctes_read_whole: bool = True
    #: Words that cannot name a table or column unquoted (the engine's reserved keywords):
    #: the schema resource shows such a name in double quotes, as a query must write it.
    reserved_words: frozenset[str] = frozenset()
    #: Whether an unquoted name is folded to lower case (PostgreSQL): then a name with capitals
    #: is shown in double quotes too. DuckDB matches names case-insensitively.
    folds_unquoted_names: bool = False
    #: Modules whose exceptions are this engine's driver failures (explained, not "internal").
    driver_modules: tuple[str, ...] = ()
    #: Whether the URL names a file ``database.build_sample`` / ``sqlmode sample-db`` can build
    #: the sample warehouse in.
    builds_sample_file: bool = False
    #: Whether the engine opens a database file named by a SQLAlchemy-style URL,
    #: ``scheme:///relative/file`` or ``scheme:////abs/file`` (``scheme:///:memory:`` for none):
    #: config resolves such a path against the config's folder, and a bare path given where a
    #: URL is expected (``database.path``, ``sqlmode init FILE``) names a file of this engine.
    file_based: bool = False
    #: Whether the read executor reads the schema on a connection it holds anyway: opened without
    #: a snapshot it reflects one (its ``snapshot``), and ``reflect()`` reads it again; the service
    #: then opens it first and opens no connection of its own to reflect.
    executor_reflects: bool = False


@dataclass(frozen=True, slots=True)
class NativeView:
    """What the engine's own parser saw: how many statements and of which kind."""

    #: One upper-case kind per statement ("SELECT", "INSERT", ... or "OTHER").
    types: tuple[str, ...]
    #: Engine-specific raw tree (PostgreSQL: pglast's JSON), for :meth:`Engine.native_refusals`.
    tree_json: str = ""


@dataclass(slots=True)
class BoundAccess:
    """What the engine bound for one query without running it: the engine check's evidence.

    ``refusal`` set: the engine could not confirm the query at all (ROUND_TRIP_MISMATCH when its
    parser does not read one query, ENGINE_REFUSED when it cannot plan it); nothing else counts.
    Otherwise ``facts`` (an ``execute.plans.PlanFacts``) lists what the plan reads and calls.
    """

    facts: Any = None
    #: The function catalog the calls are checked against (a ``schema.functions.FunctionCatalog``).
    catalog: Any = None
    #: Calls as the engine's own parser (not the plan) reads them: (schema, name).
    parsed_calls: frozenset[tuple[str, str]] = frozenset()
    #: Engine-specific findings (a call its parser sees that the allowlist does not allow...).
    violations: tuple[Violation, ...] = ()
    refusal: Violation | None = None
    #: False for a failure that may pass later (a timeout, a privilege error): not cached.
    cacheable: bool = True
    #: Whether ``facts`` carry the plan's estimates (rows, cost); an engine may skip them when
    #: they were not asked for (DuckDB: they take a second, optimized plan).
    estimates: bool = True


class NativeSyntaxError(ValueError):
    """The engine's own parser rejects the text; the message names the engine and the problem."""


@runtime_checkable
class Executor(Protocol):
    """Runs read queries for one configured database (opened by :meth:`Engine.open_executor`).

    The session is read-only, limited and cleaned between uses, whatever the analyzer let through.
    """

    #: The engine's registry name (``EngineTraits.name``).
    dialect: str
    #: Start-up warnings about the connection's privileges (e.g. "role is a superuser").
    warnings: list[str]

    async def run(self, sql: str, max_rows: int | None = None, timeout_ms: int | None = None) -> QueryResult:
        """Run one read query; at most ``max_rows`` rows come back (``truncated`` says if more existed)."""
        ...

    async def explain(self, sql: str) -> dict[str, Any]:
        """The engine's plan of ``sql`` as JSON (not executed)."""
        ...

    async def catalog_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A trusted catalog query with bind parameters, run as the reader; raw rows."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """One database engine. Methods that need the database take the Settings naming it.

    The full surface (reflection, function catalog, bound access sets, sessions, writes,
    grants) is documented in docs/engines.md; every method is required.
    """

    #: Pure facts (see :class:`EngineTraits`).
    traits: EngineTraits
    #: URL schemes served (the part before ``://``, without a ``+driver`` suffix).
    schemes: tuple[str, ...]
    #: A paragraph for the LLM's prompt: the dialect's idioms and what is never allowed.
    dialect_notes: str

    # -- the engine's own parser ------------------------------------------------------------

    def native_statements(self, code: str) -> NativeView:
        """Statement kinds as the engine's parser sees them; :class:`NativeSyntaxError` if it cannot parse."""
        ...

    def native_refusals(self, view: NativeView, root_is_write: bool = False) -> list[str]:
        """Violation codes the engine's own tree shows (nested writes, SELECT INTO, locking)."""
        ...

    def confirms_rendered(self, sql: str, expected: str) -> bool:
        """Whether the engine reads rendered SQL as exactly one statement of kind ``expected``."""
        ...

    def native_calls(self, sql: str) -> tuple[str | None, set[tuple[str, str]]]:
        """(why it is not one read query, or None; the calls its parser sees as (schema, name))."""
        ...

    # -- reflection ---------------------------------------------------------------------------

    async def reflect_tables(self, settings: Settings) -> tuple[list[Any], str]:
        """(``schema.snapshot.TableInfo`` for every table and view exposed, the database's name)."""
        ...

    def connect_error(self, error: BaseException, url: str, doing: str) -> SqlmodeError:
        """The clearest error for a failure talking to the database at ``url`` (code and hint)."""
        ...

    def describe_target(self, url: str) -> str:
        """The database ``url`` names, for messages (never credentials)."""
        ...

    # -- execution ----------------------------------------------------------------------------

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Executor:
        """A started read executor: read-only session, reader role, limits (close it when done).

        ``snapshot`` (a SchemaSnapshot) names what the session must not read, where the engine
        can prove that (PostgreSQL's reader role); engines without roles ignore it.
        """
        ...

    async def open_write_executor(self, settings: Settings) -> Any:
        """A started write executor (``run_write``); a ConfigError where writes cannot be served."""
        ...

    # -- the engine check ------------------------------------------------------------------------

    async def function_catalog(self, executor: Executor) -> Any:
        """The ``schema.functions.FunctionCatalog`` as the reader sees it (names, volatility)."""
        ...

    async def bound_access(
        self,
        sql: str,
        executor: Executor,
        *,
        snapshot: Any,
        policy: Any,
        written_functions: Sequence[str],
        load_catalog: Callable[[], Awaitable[Any]],
        estimates: bool = True,
    ) -> BoundAccess:
        """What the engine binds for ``sql`` (one read query), asked through ``executor``.

        ``policy`` is the analyzer's compiled function allowlist, ``written_functions`` the calls
        the analyzer saw in the text, ``load_catalog`` returns the snapshot's function catalog.
        ``estimates`` False: the plan's row and cost estimates are not needed (an engine whose
        estimates cost extra work may leave them out and say so in ``BoundAccess.estimates``).
        """
        ...

    # -- grants ------------------------------------------------------------------------------------

    def grant_script(self, settings: Settings, snapshot: Any, **options: Any) -> str:
        """SQL creating the reader role with access to what the config exposes (``db grants``).

        Options: ``role``, ``password``, ``keep_password``, ``login_role``. A ConfigError saying
        why on engines without roles.
        """
        ...

    def writer_script(self, settings: Settings, snapshot: Any, *, role: str) -> str:
        """SQL creating the column-restricted writer role (``db grants`` with writes allowed)."""
        ...

    async def apply_grants(self, admin_url: str, script: str) -> str:
        """Run a grant or writer script as an administrator; the new role's connection URL."""
        ...

    async def role_exists(self, admin_url: str, role: str) -> bool:
        """Whether ``role`` exists already (its password is then kept)."""
        ...


# -- the registry ------------------------------------------------------------------------------

_BY_SCHEME: dict[str, Engine] = {}
_BY_NAME: dict[str, Engine] = {}


def register_engine(engine: Engine) -> Engine:
    """Serve ``engine.schemes`` with ``engine`` (a later registration of a scheme wins)."""
    if not engine.schemes:
        raise ValueError(f"engine {engine.traits.name!r} names no URL scheme")
    for scheme in engine.schemes:
        _BY_SCHEME[scheme.lower()] = engine
    _BY_NAME[engine.traits.name] = engine
    return engine


def unregister_engine(engine: Engine) -> None:
    """Stop serving ``engine``'s schemes and name (where it still serves them)."""
    for scheme in engine.schemes:
        if _BY_SCHEME.get(scheme.lower()) is engine:
            del _BY_SCHEME[scheme.lower()]
    if _BY_NAME.get(engine.traits.name) is engine:
        del _BY_NAME[engine.traits.name]


def url_scheme(url: str) -> str:
    """'postgresql+asyncpg://u@h/db' -> 'postgresql' (lower case; '' when there is none)."""
    head, sep, _ = url.partition(":")
    return head.split("+", 1)[0].strip().lower() if sep else ""


def known_schemes() -> tuple[str, ...]:
    return tuple(sorted(_BY_SCHEME))


def accepted_urls() -> str:
    """'duckdb:///file.duckdb or postgresql://user@host:5432/db': one example per engine, for messages."""
    examples = sorted({e.traits.url_example for e in _BY_NAME.values()})
    return " or ".join(examples) or "none (no engine is registered)"


def engine_for_url(url: str) -> Engine:
    """The engine serving ``url``'s scheme; a ConfigError listing the known schemes otherwise."""
    scheme = url_scheme(url)
    engine = _BY_SCHEME.get(scheme)
    if engine is None:
        known = ", ".join(f"{s}://" for s in known_schemes()) or "none registered"
        shown = f"{scheme}://" if scheme else repr(url[:40])
        raise ConfigError(
            f"no database engine serves {shown} URLs (known: {known}); write {accepted_urls()}",
            key="database.url",
        )
    return engine


def engine_named(name: str) -> Engine:
    """The engine registered under ``name`` (``EngineTraits.name``, the ``dialect`` of results)."""
    engine = _BY_NAME.get(name)
    if engine is None:
        raise ConfigError(f"no database engine is named {name!r} (known: {', '.join(sorted(_BY_NAME))})")
    return engine


def settings_engine(settings: Settings) -> Engine:
    """The engine of ``settings.database.url``."""
    return engine_for_url(settings.database.url)


# -- database files named by URL (engines whose traits say ``file_based``) --------------------


def file_engine() -> Engine:
    """The engine a bare file path belongs to: the first registered file-based engine."""
    for engine in _BY_NAME.values():
        if engine.traits.file_based:
            return engine
    raise ConfigError("no registered database engine opens a database file; give database.url")


def is_file_url(url: str) -> bool:
    """Whether ``url`` names a database file of a registered file-based engine."""
    engine = _BY_SCHEME.get(url_scheme(url))
    return engine is not None and engine.traits.file_based


def url_for_path(path: str, engine: Engine | None = None) -> str:
    """The URL of the database file ``path`` as written: three slashes then the path, so a
    relative path stays relative and an absolute one gives four slashes."""
    return f"{(engine or file_engine()).schemes[0]}:///{path}"


def path_of_url(url: str) -> str:
    """The file path in a file engine's URL, as written ('' when it names none)."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    return rest[1:] if rest.startswith("/") else rest


def memory_url() -> str:
    """The URL of an in-memory database of the file-based engine."""
    return url_for_path(":memory:")
