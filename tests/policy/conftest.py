"""Helpers for policy tests: settings without a database, analyses from summaries."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings, bundled_path, settings_from_dict
from sqlmode.engines import engine_for_url
from sqlmode.models import Action, Analysis, Complexity, RiskLevel
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from tests.narrow import as_dialect

POLICIES = bundled_path("policies")

# The sample warehouse's tables (DESIGN.md), enough for the analyzer to resolve columns.
SAMPLE_TABLES = {
    "customers": ["id", "name", "email", "ssn", "region", "segment", "created_at"],
    "products": ["id", "name", "category", "price"],
    "orders": ["id", "customer_id", "status", "total", "created_at"],
    "order_items": ["order_id", "product_id", "quantity", "unit_price"],
    "support_tickets": ["id", "customer_id", "opened_at", "closed_at", "priority", "status", "subject"],
    "contacts": ["id", "customer_id", "contacted_at", "channel", "rep"],
    "credentials": ["id", "user_id", "secret"],
    "audit_log": ["id", "at", "actor", "action", "detail"],
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        )
    return out


def policy_settings(config: dict[str, Any] | None = None, *, dialect: str = "duckdb") -> Settings:
    """Settings for policy tests; ``policy.paths`` relative to ``policies/`` unless absolute."""
    url = "duckdb:///:memory:" if dialect == "duckdb" else "postgresql://reader@localhost:5432/warehouse"
    data = _merge({"database": {"url": url}}, config or {})
    paths = data.get("policy", {}).get("paths")
    if paths:
        data["policy"]["paths"] = [p if Path(p).is_absolute() else str(POLICIES / p) for p in paths]
    return settings_from_dict(data)


def analysis_from(summary: dict[str, Any], *, dialect: str = "duckdb") -> Analysis:
    """An Analysis from a decision-table summary; fields default to a harmless read."""
    action = Action(summary.get("action", "read"))
    return Analysis(
        dialect=as_dialect(dialect),
        code=summary.get("sql", "SELECT 1"),
        statement_type=summary.get(
            "statement_type", "SELECT" if action is Action.READ else action.value.upper()
        ),
        action=action,
        tables=list(summary.get("tables", [])),
        columns=list(summary.get("columns", [])),
        functions=list(summary.get("functions", [])),
        complexity=Complexity(
            score=summary.get("complexity", 5),
            depth=summary.get("depth", 1),
            joins=summary.get("joins", 0),
            fields=summary.get("fields", len(summary.get("columns", []))),
        ),
        risk_level=RiskLevel(summary.get("risk", "low")),
        row_limit=summary.get("row_limit", 0),
        targets=list(summary["targets"]) if "targets" in summary else None,
    )


def sample_snapshot(settings: Settings) -> SchemaSnapshot:
    """A hand-built snapshot of the sample warehouse for ``settings``' dialect and blocks."""
    tables = [
        TableInfo(
            name,
            tuple(ColumnInfo(c, "INTEGER" if c == "id" or c.endswith("_id") else "VARCHAR") for c in cols),
        )
        for name, cols in SAMPLE_TABLES.items()
    ]
    return SchemaSnapshot.build(
        engine_for_url(settings.database.url).traits.name,
        "warehouse",
        tables,
        blocked_tables=settings.code_mode.blocked_tables,
        blocked_fields=settings.code_mode.blocked_fields,
    )


@pytest.fixture(params=["duckdb", "postgres"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param
