"""Reading plans (pure): the columns a plan uses, not the ones a scan happens to return."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sqlmode.engines._duckdb_plan import read_bound_plan
from sqlmode.engines._postgres_plan import postgres_plan_facts
from sqlmode.execute.plans import split_name

CUSTOMERS = ["id", "name", "ssn", "region"]


def lookup(schema: str, table: str) -> tuple[list[str], float | None] | None:
    known = {"customers": (CUSTOMERS, 2000.0), "orders": (["id", "customer_id", "total"], 50000.0)}
    return known.get(table) if schema in ("public", "main") else None


def _scan(table: str, alias: str, output: list[str], **extra: object) -> dict:
    node = {"Node Type": "Seq Scan", "Relation Name": table, "Schema": "public", "Alias": alias}
    return {**node, "Plan Rows": 2000, "Total Cost": 60.0, "Output": output, **extra}


def test_a_whole_row_returned_under_a_join_is_not_a_use() -> None:
    """The physical target list: customers returns ssn to its parent, which never uses it."""
    plan = {
        "Plan": {
            "Node Type": "Hash Join",
            "Plan Rows": 50000,
            "Total Cost": 1200.0,
            "Output": ["c.region", "o.total"],
            "Hash Cond": "(o.customer_id = c.id)",
            "Plans": [
                _scan("orders", "o", ["o.id", "o.customer_id", "o.total"], **{"Plan Rows": 50000}),
                _scan("customers", "c", ["c.id", "c.name", "c.ssn", "c.region"]),
            ],
        }
    }
    facts = postgres_plan_facts(plan, lookup)
    assert {c for _, t, c in facts.columns if t == "customers"} == {"region", "id"}
    assert [s.rows for s in facts.scans] == [50000, 2000] and facts.peak_rows == 50000


def test_the_root_scan_output_is_the_query_output() -> None:
    facts = postgres_plan_facts({"Plan": _scan("customers", "customers", CUSTOMERS)}, lookup)
    assert {c for _, _, c in facts.columns} == set(CUSTOMERS)


def test_unqualified_columns_of_a_single_relation_and_literals() -> None:
    plan = {
        "Plan": {
            "Node Type": "Aggregate",
            "Plan Rows": 4,
            "Total Cost": 70.0,
            "Output": ["region", "count(*)"],
            "Group Key": ["customers.region"],
            "Plans": [_scan("customers", "customers", CUSTOMERS, Filter="(name <> 'ssn.x'::text)")],
        }
    }
    facts = postgres_plan_facts(plan, lookup)
    assert {c for _, _, c in facts.columns} == {"region", "name"}
    assert ("", "count") in facts.functions


def test_whole_row_references_and_qualified_calls() -> None:
    plan = {"Plan": _scan("customers", "c", ["row_to_json(c.*)", 'public."lower"(c.name)'])}
    facts = postgres_plan_facts(plan, lookup)
    assert ("public", "customers", "*") in facts.columns
    assert {("", "row_to_json"), ("public", "lower")} <= facts.functions


def _get(table: str, names: list[str], indexes: list[int]) -> dict:
    return {
        "type": "LOGICAL_GET",
        "children": [],
        "names": names,
        "qname": {"path": ["seq_scan"]},
        "table_filters": {"filters": [], "multi_column_filters": []},
        "function_data": {"catalog": "w", "schema": "main", "table": table},
        "column_indexes": [{"index": i} for i in indexes],
    }


def _call(path: list[str], *children: dict, **extra: object) -> dict:
    return {
        "expression_class": "BOUND_FUNCTION",
        "type": "BOUND_FUNCTION",
        "qname": {"path": path},
        "children": list(children),
        "query_location": 7,
        **extra,
    }


def test_duckdb_bound_plan_columns_and_calls() -> None:
    """column_indexes name exactly the bound columns; the row id is not a column."""
    ref = {"expression_class": "BOUND_REF", "index": 1}
    root: dict[str, Any] = {
        "type": "LOGICAL_PROJECTION",
        "expressions": [_call(["system", "main", "random"]), _call(["__cast"], ref, is_operator=True), ref],
        "children": [_get("customers", CUSTOMERS, [2, 1, 3, 2**64 - 1])],
    }
    bound = read_bound_plan(json.dumps({"error": False, "plans": [root]}), None, "w")
    assert bound.problems == []
    # ssn and region are bound but nothing uses them (a SELECT * below a projection that drops them).
    assert bound.columns == {("main", "customers", "name")}
    root["expressions"].append({"expression_class": "BOUND_REF", "index": 0})
    bound = read_bound_plan(json.dumps({"error": False, "plans": [root]}), None, "w")
    assert bound.columns == {("main", "customers", "ssn"), ("main", "customers", "name")}
    assert bound.functions == {("main", "random")} and bound.scans[0].catalog == "w"
    assert split_name('"My Db".Main.t') == ["My Db", "main", "t"]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"error": True, "error_type": "binder", "error_message": "x"}, "could not serialize"),
        ({"error": False, "plans": []}, "0 plans"),
        ({"error": False, "plans": [{"type": "LOGICAL_COPY_TO_FILE", "children": []}]}, "operator"),
        (
            {
                "error": False,
                "plans": [
                    {
                        "type": "LOGICAL_PROJECTION",
                        "children": [],
                        "expressions": [{"expression_class": "BOUND_PARAMETER"}],
                    }
                ],
            },
            "expression",
        ),
        ({"error": False, "plans": [_get("customers", CUSTOMERS, [9])]}, "virtual column"),
    ],
    ids=["serialization-error", "no-plan", "unknown-operator", "unknown-expression", "unknown-column-index"],
)
def test_duckdb_bound_plan_fails_closed(doc: dict, problem: str) -> None:
    assert problem in " ".join(read_bound_plan(json.dumps(doc)).problems)
    assert "too large" in read_bound_plan(None, 9_000_000).problems[0]


def _guard(**change: object) -> dict:
    """The binder's scalar-subquery guard: CASE WHEN #count > 1 THEN error('...') ELSE #first END."""
    none = 2**64 - 1
    count = {"expression_class": "BOUND_REF", "index": 1}
    one = {"expression_class": "BOUND_CONSTANT", "value": {"type": {"id": "BIGINT"}, "value": 1}}
    when = {
        "expression_class": "BOUND_FUNCTION",
        "type": "COMPARE_GREATERTHAN",
        "qname": {"path": [">"]},
        "is_operator": True,
        "children": [count, one],
        "query_location": none,
    }
    msg = {
        "expression_class": "BOUND_CONSTANT",
        "value": {"type": {"id": "VARCHAR"}, "value": "More than one"},
    }
    then = _call(["system", "main", "error"], msg, query_location=none)
    case = {
        "expression_class": "BOUND_CASE",
        "type": "CASE_EXPR",
        "query_location": none,
        "case_checks": [{"when_expr": when, "then_expr": then}],
        "else_expr": {"expression_class": "BOUND_REF", "index": 0},
    }
    case.update(change)
    return {"error": False, "plans": [{"type": "LOGICAL_PROJECTION", "expressions": [case], "children": []}]}


def test_the_binders_scalar_subquery_guard_is_not_a_user_call() -> None:
    bound = read_bound_plan(json.dumps(_guard()))
    assert bound.binder_calls == {("main", "error")} and bound.functions == set()
    # The same shape elsewhere (a built-in macro's guard, json_group_object's NULL key) is reported
    # apart too: error('<constant>') ends the query and does nothing else. Whether the query wrote
    # it is the analyzer's reading of the text (_duckdb_check._binder_calls), not the plan's.
    macro = read_bound_plan(json.dumps(_guard(query_location=12)))
    assert macro.binder_calls == {("main", "error")} and ("main", "error") not in macro.functions
    # error() of anything but a constant is a call like any other.
    ref = {"expression_class": "BOUND_REF", "index": 0}
    call = _call(["system", "main", "error"], ref)
    root = {"type": "LOGICAL_PROJECTION", "expressions": [call], "children": []}
    computed = read_bound_plan(json.dumps({"error": False, "plans": [root]}))
    assert computed.binder_calls == set() and ("main", "error") in computed.functions


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        # list_sort's bind data carries a sort key at position 1 of its own input: not a column.
        ("SELECT list_sort(list(name)) FROM (SELECT * FROM customers)", {"name"}),
        ("SELECT list_sort(list(ssn)) FROM (SELECT * FROM customers)", {"ssn"}),
        ("SELECT list_aggregate(list(name), 'string_agg', ',') FROM (SELECT * FROM customers)", {"name"}),
        ("WITH t AS (SELECT * FROM customers) SELECT list_sort(list(region), 'DESC') FROM t", {"region"}),
        # A lambda's capture is read through the call's trailing argument.
        (
            "SELECT list_transform(list(id), lambda v: v || ssn) FROM (SELECT * FROM customers) GROUP BY ssn",
            {"id", "ssn"},
        ),
    ],
)
def test_duckdb_bind_data_expressions_are_not_references_to_the_input(sql: str, read: set[str]) -> None:
    """A call's bind data (``function_data``) holds expressions over the call's own arguments.

    Read as references to the operator's input they pointed at positions the input does not have
    (or at the wrong columns), and every column a ``SELECT *`` bound counted as read.
    """
    import duckdb

    from sqlmode.engines._duckdb_plan import BOUND_PLAN_SQL

    con = duckdb.connect()
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR, ssn VARCHAR, region VARCHAR)")
    row = con.execute(BOUND_PLAN_SQL, [sql]).fetchone()
    assert row is not None
    bound = read_bound_plan(row[0], None, "memory")
    assert bound.problems == []
    assert bound.columns == {("main", "customers", c) for c in read}
