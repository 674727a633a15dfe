"""sqlmode: SQL Code Mode for MCP.

An LLM writes one SQL query; sqlmode validates it (sqlglot + the engine's own parser),
explains it, decides with Cedar, signs an approval token bound to the exact code, user,
session, schema and policy, and runs it read-only under row and time limits.

    from sqlmode import CodeModeService

    async with CodeModeService.from_config("sqlmode.toml") as service:
        v = await service.validate("SELECT region, count(*) FROM customers GROUP BY 1")
        rows = await service.execute(v.normalized_code, v.approval_token)
"""

from typing import TYPE_CHECKING

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
    StateError,
    TokenError,
)
from .models import Action, ColumnMeta, Principal, QueryResult, RiskLevel, ValidationResult, Violation

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see of the lazy names below (at run time, __getattr__)
    from .audit import AuditSink
    from .policy.evaluator import PolicyEvaluator
    from .service import CodeModeService
    from .state import NonceStore, StateRecord, StateStore


# Imported on first use: the service pulls in every layer (sqlglot, cedarpy, drivers), and
# `import sqlmode.config` should stay cheap. The protocols are what embedders implement to bring
# their own engine, state store, audit sink or policy evaluator into CodeModeService.
_LAZY = {
    "CodeModeService": ("service", "CodeModeService"),
    "Engine": ("engines", "Engine"),
    "EngineTraits": ("engines", "EngineTraits"),
    "Executor": ("engines", "Executor"),
    "register_engine": ("engines", "register_engine"),
    "StateStore": ("state", "StateStore"),
    "NonceStore": ("state", "NonceStore"),
    "StateRecord": ("state", "StateRecord"),
    "AuditSink": ("audit", "AuditSink"),
    "PolicyEvaluator": ("policy.evaluator", "PolicyEvaluator"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'sqlmode' has no attribute {name!r}")


__all__ = [
    "Action",
    "ApprovalError",
    "AuditError",
    "AuditSink",
    "CodeModeService",
    "ColumnMeta",
    "ConfigError",
    "DatabaseUnavailableError",
    "Engine",
    "EngineTraits",
    "ExecutionError",
    "Executor",
    "NonceStore",
    "PermissionDeniedError",
    "PolicyError",
    "PolicyEvaluator",
    "Principal",
    "QueryCancelledError",
    "QueryResult",
    "QueryTimeoutError",
    "RiskLevel",
    "SchemaError",
    "SecretError",
    "Settings",
    "SqlmodeError",
    "StateError",
    "StateRecord",
    "StateStore",
    "TokenError",
    "ValidationResult",
    "Violation",
    "__version__",
    "load_config",
    "register_engine",
]
