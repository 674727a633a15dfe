"""Settings from a TOML file plus environment variables (pydantic-settings).

Precedence, highest first: explicit keyword arguments > ``SQLMODE_*`` environment
variables (nested keys joined with ``__``, e.g. ``SQLMODE_CODE_MODE__MAX_ROWS=50``) >
the TOML file. String values in the TOML may reference the environment as ``${VAR}``
or ``${VAR:-default}``; a reference to an unset variable without a default is a
:class:`ConfigError` naming the file and key.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError, SqlmodeError

CONFIG_ENV = "SQLMODE_CONFIG"
SECRET_ENV = "CODE_MODE_SECRET"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("_toml_data", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableConfig(_Section):
    name: str
    description: str = ""
    # Operations Cedar may allow on this table beyond the global switches ("read", "write", "delete").
    operations: list[Literal["read", "write", "delete"]] = Field(default_factory=lambda: ["read"])  # type: ignore[arg-type]


class ServerConfig(_Section):
    name: str = "analytics"
    type: Literal["sql"] = "sql"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    # In-band approval through MCP elicitation for these risk levels (and above none).
    elicit_risk_levels: list[Literal["low", "medium", "high", "critical"]] = Field(default_factory=list)
    # Processes serving this config behind one address (workers or replicas); above 1, HTTP serving
    # requires a durable state.url so that a token is spent everywhere at once.
    workers: int = Field(default=1, ge=1)
    # HTTP limits, so that one credential cannot starve the others. Per principal (the
    # authenticated user; the client address without [auth]) and per process.
    max_sessions: int = Field(default=1000, ge=1)
    max_sessions_per_credential: int = Field(default=16, ge=1)
    session_idle_timeout_seconds: float = Field(default=300, gt=0)
    requests_per_minute: int = Field(default=600, ge=1)
    validations_per_minute: int = Field(default=120, ge=1)
    max_concurrent_validations: int = Field(default=1, ge=1)
    max_queued_validations: int = Field(default=4, ge=0)
    # Analysis runs in this many workers (not on the event loop), each under a deadline; when
    # serving HTTP the workers are processes unless analysis_processes is false.
    analysis_workers: int = Field(default=4, ge=1, le=64)
    analysis_processes: bool = True
    analysis_timeout_ms: int = Field(default=5000, ge=1)


class DatabaseConfig(_Section):
    # Either url or path. DuckDB URLs follow SQLAlchemy: duckdb:///file.duckdb is relative to the
    # config file's folder, duckdb:////abs/file.duckdb (four slashes) is absolute.
    url: str = Field(default="", description="duckdb:///file.duckdb or postgresql://user@host:5432/db")
    # A DuckDB file as a plain path (relative to the config file's folder, or absolute, ~ allowed).
    path: str | None = None
    tables: list[TableConfig] = Field(default_factory=list)
    # Postgres schema(s) to expose; DuckDB uses "main".
    schemas: list[str] = Field(default_factory=list)
    # Build the sample warehouse at the DuckDB path on first use when the file is missing.
    build_sample: bool = False
    sample_scale: int = Field(default=1, ge=1, le=100)
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=4, ge=1, le=200)
    connect_timeout_ms: int = Field(default=5000, ge=100)
    lock_timeout_ms: int = Field(default=1000, ge=1)
    idle_in_transaction_timeout_ms: int = Field(default=10000, ge=100)
    memory_limit: str = "1GB"
    threads: int = Field(default=2, ge=1)
    max_temp_directory_size: str = "1GB"
    max_cell_bytes: int = Field(default=8192, ge=64)
    schema_ttl_seconds: int = Field(default=300, ge=0)
    # Curated table and column descriptions (TOML, see schema_resources/): a path relative to this
    # file, or the name of a file in the bundled schema_resources/ folder.
    descriptions: str | None = None
    # Separate connection for writes, used only when code_mode.allow_writes is true.
    write_url: str | None = None
    # Postgres: the role queries switch to (SET LOCAL ROLE) when the login role could read more
    # than the config allows (engines/_postgres_role.py proves its grants at start-up).
    reader_role: str = Field(default="sqlmode_reader", min_length=1, max_length=63)
    # Development only: run as a login role that fails that proof, with a warning at every start.
    allow_privileged_role: bool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        # The engines registered for URL schemes decide; an unknown one names those known.
        from .engines.base import accepted_urls, engine_for_url

        if not v:
            return v
        try:
            if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", v):
                raise ValueError(v)
            engine_for_url(v)
        except (ValueError, SqlmodeError):
            raise ValueError(
                f"no database engine serves this URL: write {accepted_urls()} "
                "(for a database file you may write database.path instead)"
            ) from None
        return v

    @model_validator(mode="after")
    def _url_or_path(self) -> DatabaseConfig:
        if self.path is not None and self.url:
            raise ValueError("give database.url or database.path, not both")
        if self.path is not None:
            if not self.path.strip():
                raise ValueError("database.path is empty")
            # The file engine's URL with the path as written: relative stays relative.
            from .engines.base import url_for_path

            self.url = url_for_path(self.path)
        elif not self.url:
            raise ValueError(
                "database.url is required (duckdb:///file.duckdb or postgresql://user@host:5432/db), "
                "or database.path for a DuckDB file"
            )
        return self

    def duckdb_config(self) -> dict[str, str | bool | int]:
        """The one DuckDB connection config, shared by reflection and the executor.

        DuckDB refuses a second connection to the same file with a different config in
        one process, so every read-only connection sqlmode opens must use exactly this.
        """
        return {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_persistent_secrets": False,
            "python_enable_replacements": False,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "max_temp_directory_size": self.max_temp_directory_size,
        }

    @property
    def duckdb_path(self) -> str:
        """Filesystem path of the DuckDB database (``:memory:`` allowed)."""
        from .engines.base import path_of_url

        return path_of_url(self.url) or ":memory:"


class CedarPolicyConfig(_Section):
    read_only_mode: bool = True
    block_introspection: bool = True
    max_depth: int = Field(default=10, ge=1)
    max_fields: int = Field(default=100, ge=1)


class FunctionConfig(_Section):
    # Names added to (allow) or removed from (deny) the built-in analyst allowlist.
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    # Postgres volatile functions that may still run (catalog check); normally empty.
    allow_volatile: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BlockedName:
    """One ``code_mode.blocked_tables`` or ``blocked_fields`` entry, parsed: lower-case parts.

    The one reading of these entries. ``[catalog.][schema.]table[.column]``: the schema snapshot
    resolves them to table keys, the analyzer also matches bare names (over-approximating), the
    generated Cedar policies, the config name check and the write-role check read them from here.
    """

    entry: str  # as written
    schema: str | None  # None for a bare table name
    table: str
    column: str = ""  # "" for a blocked_tables entry

    @property
    def table_entry(self) -> str:
        """``schema.table`` or ``table``, the way a table is named in config (catalog dropped)."""
        return f"{self.schema}.{self.table}" if self.schema else self.table


def blocked_name(entry: str, *, field: bool) -> BlockedName:
    """Parse one entry of ``code_mode.blocked_tables`` (``field=False``) or ``blocked_fields``."""
    text, column = entry.lower(), ""
    if field:
        text, _, column = text.rpartition(".")
    parts = text.split(".")
    return BlockedName(entry, parts[-2] if len(parts) > 1 else None, parts[-1], column)


class CodeModeConfig(_Section):
    enabled: bool = True
    allow_writes: bool = False
    allow_deletes: bool = False
    blocked_tables: list[str] = Field(default_factory=list)
    blocked_fields: list[str] = Field(default_factory=list)
    max_rows: int = Field(default=1000, ge=1, le=1_000_000)
    query_timeout_ms: int = Field(default=5000, ge=10, le=3_600_000)
    token_ttl_seconds: int = Field(default=300, ge=5, le=86_400)
    token_secret: str | None = None
    # Older secrets still accepted for verification during rotation: key id -> secret.
    token_previous_secrets: dict[str, str] = Field(default_factory=dict)
    token_key_id: str = "k1"
    max_joins: int = Field(default=8, ge=0)
    # TPC-DS, the heaviest real analytic SQL at hand, scores up to about 610 (query 88).
    max_complexity: int = Field(default=800, ge=1)
    max_write_rows: int = Field(default=100, ge=0)
    # Refuse before running when the database's plan estimates more rows at one step, or a higher
    # cost (PostgreSQL cost units; DuckDB: rows moved by all steps), than this. None: no limit.
    max_estimated_rows: float | None = None
    max_estimated_cost: float | None = None
    # The plan's row and cost estimates: "auto" asks for them only when something reads them (a
    # limit above, a risk level under [approval] or elicitation, reads waiting for an approver, a
    # Cedar rule reading the risk or the estimates); "always" also for the explanation's figures.
    # DuckDB plans a second time for them (the optimizer); PostgreSQL's plan always has them.
    plan_estimates: Literal["auto", "always"] = "auto"
    # Ask the database to describe every query (parse, plan, function catalog) before a token is
    # issued, and refuse when it disagrees with the analyzer (sqlmode/execute/confirm.py).
    engine_confirmation: bool = True
    functions: FunctionConfig = Field(default_factory=FunctionConfig)
    cedar_policies: CedarPolicyConfig = Field(default_factory=CedarPolicyConfig)

    @property
    def blocked_table_names(self) -> tuple[BlockedName, ...]:
        return tuple(blocked_name(e, field=False) for e in self.blocked_tables)

    @property
    def blocked_field_names(self) -> tuple[BlockedName, ...]:
        return tuple(blocked_name(e, field=True) for e in self.blocked_fields)

    @field_validator("blocked_fields")
    @classmethod
    def _qualified(cls, v: list[str]) -> list[str]:
        for item in v:
            if item.count(".") < 1:
                raise ValueError(f"{item!r} must be written as table.column")
        return v

    @model_validator(mode="after")
    def _estimates_need_the_engine(self) -> CodeModeConfig:
        # The estimates come from the engine's plan: without confirmation the limits would be ignored.
        if not self.engine_confirmation:
            for name in ("max_estimated_rows", "max_estimated_cost"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} needs engine_confirmation = true (the estimate comes from the "
                        "database's plan); remove the limit or turn engine confirmation on"
                    )
        return self


class UserConfig(_Section):
    groups: list[str] = Field(default_factory=list)


class PolicyConfig(_Section):
    evaluator: Literal["cedar", "noop"] = "cedar"
    paths: list[str] = Field(default_factory=list)
    users: dict[str, UserConfig] = Field(default_factory=dict)
    default_user: str = "local"
    # Policy files are stat'ed for changes at most this often (seconds); 0 checks on every
    # decision. A change is picked up (and outstanding tokens invalidated) within this time.
    reload_check_seconds: float = Field(default=1.0, ge=0)


class AuthTokenConfig(_Section):
    user: str
    groups: list[str] = Field(default_factory=list)


class AuthConfig(_Section):
    # Static bearer tokens -> principals, for HTTP serving.
    tokens: dict[str, AuthTokenConfig] = Field(default_factory=dict)
    jwt_public_key: str | None = None
    jwt_secret: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "HS256"])
    groups_claim: str = "groups"
    # Approvers log in to the approval page through this OpenID Connect provider (authorization
    # code flow with PKCE; the page's callback is <approval base URL>/login/oidc/callback).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    oidc_user_claim: str = "sub"


class StateConfig(_Section):
    # Shared state (spent approval tokens): none = this process only (a restart voids tokens),
    # sqlite:///path = processes on one host, postgresql://... = every replica.
    url: str | None = None
    schema_name: str = "sqlmode_state"
    pool_max_size: int = Field(default=4, ge=1, le=100)
    timeout_ms: int = Field(default=5000, ge=100)


class ApprovalConfig(_Section):
    # What waits for a human approver (nothing by default): a query whose risk level or action is
    # listed here runs only after ``required`` distinct members of ``approvers_group`` (never the
    # requester) approved that exact code on the approval page.
    risk_levels: list[Literal["low", "medium", "high", "critical"]] = Field(default_factory=list)
    actions: list[Literal["read", "write", "delete"]] = Field(default_factory=list)
    approvers_group: str = "approvers"
    required: int = Field(default=1, ge=1, le=2)
    expires_seconds: int = Field(default=900, ge=1, le=86400)
    # The page's address as approvers reach it (default: the HTTP server's own address).
    base_url: str | None = None
    # A stdio process serves the page itself, on this address: loopback unless page_allow_remote
    # (the page logs approvers in); port 0 lets the OS pick a free one, which the links then carry.
    page_host: str = "127.0.0.1"
    page_port: int = Field(default=0, ge=0, le=65535)
    page_allow_remote: bool = False
    # How long one execute_code call waits for the decision before answering "still pending".
    wait_seconds: float = Field(default=20.0, ge=0, le=120)
    # Notify approvers of each new request (a POST of its id and link); signed when a secret is set.
    webhook_url: str | None = None
    webhook_secret: str | None = None


AUDIT_KEY_ENV = "SQLMODE_AUDIT_KEY"


class AuditConfig(_Section):
    enabled: bool = True
    path: str = "sqlmode-audit.jsonl"
    # Also (or instead of the file, when path = "") chain records into PostgreSQL, one chain per replica.
    url: str | None = None
    schema_name: str = "sqlmode_audit"
    # HMAC key of the chain (default: $SQLMODE_AUDIT_KEY), distinct from the token secret.
    key: str | None = None
    key_id: str = "a1"
    previous_keys: dict[str, str] = Field(default_factory=dict)
    # Names this process's chain in every record; default: host name and a random suffix per start.
    replica_id: str | None = None
    # Records other than an execute's intent become durable within this window (group commit); 0: each
    # record is durable before the call returns. An intent is always durable before its query runs.
    flush_window_ms: int = Field(default=10, ge=0, le=1000)

    @model_validator(mode="after")
    def _key_from_environment(self) -> AuditConfig:
        # Unset or empty (e.g. "${SQLMODE_AUDIT_KEY:-}") falls back to the variable itself.
        if not self.key:
            self.key = os.environ.get(AUDIT_KEY_ENV) or None
        return self


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix="SQLMODE_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig
    code_mode: CodeModeConfig = Field(default_factory=CodeModeConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    # Where the file came from; relative paths in it are resolved against its folder.
    source_path: str | None = None
    # Where code_mode.token_secret came from, for error messages that tell the truth.
    _secret_source: str = PrivateAttr(default="code_mode.token_secret")
    # The DuckDB path as written in the config, before it was made absolute.
    _duckdb_written: str | None = PrivateAttr(default=None)

    @property
    def secret_source(self) -> str:
        return self._secret_source

    @property
    def is_bundled_sample(self) -> bool:
        """True for the bundled sample config (the one `sqlmode sample-db` builds a database for)."""
        if not self.source_path:
            return False
        try:
            return Path(self.source_path).resolve() == sample_config_path().resolve()
        except ConfigError:
            return False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def base_dir(self) -> Path:
        return Path(self.source_path).parent if self.source_path else Path.cwd()

    def resolve_path(self, p: str) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        path = Path(os.path.expanduser(p))
        return path if path.is_absolute() else (self.base_dir / path)


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = _toml_data.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get() or {})


def _interpolate(value: Any, path: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, path, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            env = os.environ.get(name)
            if env is not None and env != "":
                return env
            if default is not None:
                return default
            raise ConfigError(
                f"refers to ${{{name}}}, but the environment variable {name} is not set",
                path=path,
                key=key,
                hint=f"export {name}=... or write ${{{name}:-default}} in the file",
            )

        return _ENV_REF.sub(repl, value)
    return value


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` (parsed TOML) with ``overrides`` merged in: tables merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def bundled_path(name: str) -> Path:
    """A top-level project folder (sample_db, policies, schema_resources), installed or from the repo."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / name, here.parent / name):
        if candidate.exists():
            return candidate
    raise ConfigError(f"bundled folder {name!r} not found; the installation is incomplete")


def sample_config_path() -> Path:
    return bundled_path("sample_db") / "sqlmode.toml"


def default_config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else sample_config_path()


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from a TOML file (default: $SQLMODE_CONFIG, else the sample config)."""
    cfg_path = Path(path) if path is not None else default_config_path()
    shown = str(cfg_path)
    try:
        raw = cfg_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", path=shown, code="CONFIG_NOT_FOUND") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror}", path=shown) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid TOML: {e}", path=shown, code="CONFIG_SYNTAX") from None
    data = _interpolate(data, shown, "")
    return settings_from_dict(data, source=str(cfg_path.resolve()), shown=shown, **overrides)


def settings_for_database(url: str, path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings for the database at ``url`` (a URL or a DuckDB file path, relative to the current folder).

    With ``path``, the config file's other settings apply and only its database location is
    replaced; without, the defaults (no blocks: the whole database is visible).
    """
    from .engines.base import is_file_url, memory_url, path_of_url

    data: dict[str, Any] = {}
    shown = "--database"
    source = None
    if path is not None:
        cfg = Path(path)
        shown = str(cfg)
        try:
            data = _interpolate(tomllib.loads(cfg.read_text(encoding="utf-8")), shown, "")
        except FileNotFoundError:
            raise ConfigError("config file not found", path=shown, code="CONFIG_NOT_FOUND") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"not valid TOML: {e}", path=shown, code="CONFIG_SYNTAX") from None
        source = str(cfg.resolve())
    db = {k: v for k, v in dict(data.get("database") or {}).items() if k not in ("url", "path")}
    if re.match(r"^[a-z][a-z0-9+]*://", url):
        if is_file_url(url):
            rest = path_of_url(url)
            db["path"] = (
                str(Path(rest).expanduser().resolve()) if rest not in ("", ":memory:") else ":memory:"
            )
        else:
            db["url"] = url
    else:
        db["path"] = str(Path(url).expanduser().resolve())
    if db.get("path") == ":memory:":
        db["url"] = memory_url()
        del db["path"]
    data["database"] = db
    return settings_from_dict(data, source=source, shown=shown)


def settings_from_dict(
    data: dict[str, Any], *, source: str | None = None, shown: str | None = None, **overrides: Any
) -> Settings:
    """Build settings from already-parsed TOML data (used by tests and embedders)."""
    token = _toml_data.set(data)
    try:
        settings = Settings(source_path=source, **overrides)
    except ValidationError as e:
        raise _config_error(e, shown or source or "<settings>") from None
    finally:
        _toml_data.reset(token)
    _resolve_relative_paths(settings)
    _secret_from_env(settings)
    return settings


def _config_error(e: ValidationError, shown: str) -> ConfigError:
    problems = []
    first_key = None
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"])
        first_key = first_key or key
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known setting (check the spelling)"
        problems.append(f"{key}: {msg}")
    return ConfigError("; ".join(problems), path=shown, key=None if len(problems) > 1 else first_key)


def one_shot_secret(settings: Settings) -> Settings:
    """A random token secret when none is configured, for commands whose tokens die with them.

    validate, query, schema and the demo mint tokens only for this process, so an ephemeral
    secret is the right one and not worth a warning (serve still warns: its clients may hold on).
    """
    if not settings.code_mode.token_secret:
        settings.code_mode.token_secret = secrets.token_urlsafe(32)
    return settings


def _secret_from_env(s: Settings) -> None:
    """CODE_MODE_SECRET is the default of code_mode.token_secret (the TOML or SQLMODE_* win)."""
    env = os.environ.get(SECRET_ENV)
    if s.code_mode.token_secret:
        if env and s.code_mode.token_secret == env:  # written as "${CODE_MODE_SECRET}" in the TOML
            s._secret_source = SECRET_ENV
        return
    if env:
        s.code_mode.token_secret = env
        s._secret_source = SECRET_ENV


def _resolve_relative_paths(s: Settings) -> None:
    db = s.database
    from .engines.base import engine_for_url, is_file_url, url_for_path

    if is_file_url(db.url) and db.duckdb_path != ":memory:":
        s._duckdb_written = db.duckdb_path
        p = s.resolve_path(db.duckdb_path)
        db.url = url_for_path(str(p), engine_for_url(db.url))
    if s.audit.path:
        s.audit.path = str(s.resolve_path(s.audit.path))
    if db.descriptions:
        # A bare name not found next to the config falls back to the bundled schema_resources/.
        p = s.resolve_path(db.descriptions)
        if not p.exists() and not Path(db.descriptions).is_absolute():
            bundled = Path(__file__).resolve().parent / "_bundled" / "schema_resources" / db.descriptions
            repo = Path(__file__).resolve().parent.parent / "schema_resources" / db.descriptions
            p = next((c for c in (bundled, repo) if c.exists()), p)
        db.descriptions = str(p)
    s.policy.paths = [str(s.resolve_path(p)) for p in s.policy.paths]
