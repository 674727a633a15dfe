"""Reading plans (pure): the columns a plan uses, not the ones a scan happens to return."""

from __future__ import annotations

import json

from sqlmode.execute.plans import duckdb_bound_calls, duckdb_plan_facts, postgres_plan_facts, split_name

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


def test_duckdb_scans_filters_and_bound_calls() -> None:
    plan = {
        "Plan": {
            "name": "PROJECTION",
            "extra_info": {"Projections": ["x"], "Estimated Cardinality": "10"},
            "children": [
                {
                    "name": "SEQ_SCAN ",
                    "children": [],
                    "extra_info": {
                        "Table": '"w".main.customers',
                        "Projections": "name",
                        "Filters": "(region = 'ssn')",
                        "Estimated Cardinality": "500",
                    },
                }
            ],
        }
    }
    facts = duckdb_plan_facts(plan, lookup, "w")
    assert facts.columns == {("main", "customers", "name"), ("main", "customers", "region")}
    assert facts.scans[0].catalog == "w" and facts.scans[0].rows == 2000 and facts.cost == 510
    calls = [["system", "main", "random"], ["seq_scan"], ["__cast"], ["system", "main", "+"], ["range"]]
    bound = {"plans": [{"expressions": [{"qname": {"path": p}} for p in calls]}]}
    assert duckdb_bound_calls(json.dumps(bound)) == {("main", "random"), ("", "range")}
    assert split_name('"My Db".Main.t') == ["My Db", "main", "t"]
