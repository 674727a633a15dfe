"""sqlmode: SQL Code Mode for MCP.

An LLM writes one SQL query; sqlmode validates it (sqlglot + the engine's own parser),
explains it, decides with Cedar, signs an approval token bound to the exact code, user,
session, schema and policy, and runs it read-only under row and time limits.

    from sqlmode import CodeModeService

    async with CodeModeService.from_config("sqlmode.toml") as service:
        v = await service.validate("SELECT region, count(*) FROM customers GROUP BY 1")
        rows = await service.execute(v.normalized_code, v.approval_token)
"""

from .config import Settings, load_config
from .errors import (
    ApprovalError,
    AuditError,
    ConfigError,
    DatabaseUnavailableError,
    ExecutionError,
    PermissionDeniedError,
    PolicyError,
    QueryCancelledError,
    QueryTimeoutError,
    SchemaError,
    SecretError,
    SqlmodeError,
    TokenError,
)
from .models import Action, ColumnMeta, Principal, QueryResult, RiskLevel, ValidationResult, Violation

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The service pulls in every layer (sqlglot, cedarpy, drivers); import it only when asked,
    # so `import sqlmode.config` stays cheap.
    if name == "CodeModeService":
        from .service import CodeModeService

        return CodeModeService
    raise AttributeError(f"module 'sqlmode' has no attribute {name!r}")


__all__ = [
    "Action",
    "ApprovalError",
    "AuditError",
    "CodeModeService",
    "ColumnMeta",
    "ConfigError",
    "DatabaseUnavailableError",
    "ExecutionError",
    "PermissionDeniedError",
    "PolicyError",
    "Principal",
    "QueryCancelledError",
    "QueryResult",
    "QueryTimeoutError",
    "RiskLevel",
    "SchemaError",
    "SecretError",
    "Settings",
    "SqlmodeError",
    "TokenError",
    "ValidationResult",
    "Violation",
    "__version__",
    "load_config",
]
