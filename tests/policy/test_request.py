"""The Cedar request built from an analysis: every schema attribute, always present."""

from __future__ import annotations

import json

import cedarpy
import pytest

from sqlmode.analyze import Analyzer
from sqlmode.errors import AuthError
from sqlmode.models import Principal
from sqlmode.policy import build_context, build_request, check_policies, principal_from_config
from tests.analyze.conftest import make_settings, sample_snapshot

from .conftest import POLICIES, analysis_from, policy_settings

SCHEMA = cedarpy.Schema.from_str((POLICIES / "sqlmode.cedarschema").read_text())


def test_context_carries_what_the_analyzer_found() -> None:
    a = analysis_from(
        {
            "tables": ["Orders", "customers", "orders"],
            "columns": ["orders.Total", "customers.id"],
            "functions": ["SUM", "count"],
            "risk": "medium",
            "complexity": 42,
            "depth": 3,
            "joins": 1,
            "fields": 2,
            "row_limit": 1000,
        },
        dialect="postgres",
    )
    ctx = build_context(a)
    assert ctx == {
        "action": "read",
        "statement_type": "SELECT",
        "dialect": "postgres",
        "tables": ["customers", "orders"],
        "targets": [],
        "columns": ["customers.id", "orders.total"],
        "table_names": ["customers", "orders"],
        "column_names": ["customers.id", "orders.total"],
        "functions": ["count", "sum"],
        "risk": "medium",
        "risk_rank": 1,
        "complexity": 42,
        "depth": 3,
        "joins": 1,
        "fields": 2,
        "row_limit": 1000,
        "catalog": False,
    }


def test_write_targets() -> None:
    ctx = build_context(
        analysis_from({"action": "write", "tables": ["orders", "products"], "targets": ["orders"]})
    )
    assert ctx["targets"] == ["orders"]
    # No target information: every table is a target (stricter, never looser).
    ctx = build_context(analysis_from({"action": "delete", "tables": ["orders", "products"]}))
    assert ctx["targets"] == ["orders", "products"]


@pytest.mark.parametrize(
    ("tables", "functions", "catalog"),
    [
        (["information_schema.columns"], [], True),
        (["pg_catalog.pg_class"], [], True),
        (["pg_user"], [], True),
        ([], ["duckdb_settings"], True),
        ([], ["pg_read_file"], True),
        (["orders", "pageviews"], ["percentile_cont"], False),
        # a value's type and byte counts: named like catalog functions, reading none
        (["orders"], ["pg_typeof", "pg_size_pretty", "pg_size_bytes"], False),
        (["orders"], ["pg_typeof", "pg_relation_size"], True),
        (["pg_typeof"], [], True),
    ],
)
def test_catalog_detection(tables: list[str], functions: list[str], catalog: bool) -> None:
    assert build_context(analysis_from({"tables": tables, "functions": functions}))["catalog"] is catalog


def test_analyzer_may_flag_a_catalog_read_itself() -> None:
    a = analysis_from({"tables": ["orders"]})
    a.catalog = True
    assert build_context(a)["catalog"] is True


def test_request_entities_validate_against_the_schema() -> None:
    s = policy_settings({"policy": {"users": {"ann": {"groups": ["analysts", "b"]}}}})
    a = analysis_from({"tables": ["orders"], "columns": ["orders.id"], "row_limit": 5})
    request, entities = build_request(s, Principal("ann", ("a",)), a)
    parsed = json.loads(entities)
    user = next(e for e in parsed if e["uid"]["type"] == "User")
    assert [g["id"] for g in user["parents"]] == ["a", "analysts", "b"]
    query = next(e for e in parsed if e["uid"]["type"] == "Query")
    assert {(p["type"], p["id"]) for p in query["parents"]} == {("Table", "orders"), ("Column", "orders.id")}
    # The full request type-checks: evaluating with the schema raises no errors.
    report = check_policies(s)
    result = cedarpy.is_authorized(request, report.effective_text, entities, schema=SCHEMA)
    assert result.allowed and not result.diagnostics.errors


@pytest.mark.parametrize("action", ["read", "write", "delete", "admin", "unknown"])
def test_every_action_type_checks(action: str) -> None:
    s = policy_settings()
    request, entities = build_request(s, Principal("u"), analysis_from({"action": action, "tables": ["t"]}))
    result = cedarpy.is_authorized(request, "permit (principal, action, resource);", entities, schema=SCHEMA)
    assert not result.diagnostics.errors
    assert request["action"]["id"] == action


PRINCIPAL_CASES: list[tuple[tuple[str | None, str | None, list[str] | None, bool], Principal]] = [
    # (user, session, groups, external) -> Principal
    ((None, None, None, False), Principal("ann", ("analysts",), "local")),
    (("ann", "s1", None, False), Principal("ann", ("analysts",), "s1")),
    (("ann", "s1", ["ops"], False), Principal("ann", ("ops",), "s1")),  # the caller's groups win
    (("zoe", None, None, False), Principal("zoe", (), "local")),
    # An identity provider's "ann" is not the configured ann: the token's groups only.
    (("ann", "s2", ["ops"], True), Principal("ann", ("ops",), "s2", external=True)),
    (("ann", None, None, True), Principal("ann", (), "local", external=True)),
]


@pytest.mark.parametrize(("claims", "expected"), PRINCIPAL_CASES)
def test_principal_from_claims_and_config(
    claims: tuple[str | None, str | None, list[str] | None, bool], expected: Principal
) -> None:
    s = policy_settings({"policy": {"users": {"ann": {"groups": ["analysts"]}}, "default_user": "ann"}})
    user, session, groups, external = claims
    assert principal_from_config(s, user, session, groups, external=external) == expected


@pytest.mark.parametrize("user", [None, "", "  "])
def test_an_external_credential_must_name_a_user(user: str | None) -> None:
    with pytest.raises(AuthError):
        principal_from_config(policy_settings(), user, "s", ["ops"], external=True)


def test_an_analyzed_catalog_read_sets_context_catalog() -> None:
    # With introspection allowed the catalog read passes the analyzer but is not a table of
    # the query: only the analyzer's own fact tells policies (a write reading it is refused).
    settings = make_settings("duckdb", cedar_policies={"block_introspection": False})
    sql = "SELECT table_name FROM information_schema.tables"
    a = Analyzer(settings).analyze(sql, sample_snapshot("duckdb"))
    assert a.violations == [] and a.tables == [] and a.catalog is True
    assert build_context(a)["catalog"] is True
    plain = Analyzer(settings).analyze("SELECT id FROM orders", sample_snapshot("duckdb"))
    assert plain.catalog is False and build_context(plain)["catalog"] is False
