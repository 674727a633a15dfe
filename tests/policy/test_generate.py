"""Server policies generated from the config: ids, switches, escaping, validity."""

from __future__ import annotations

import re
from typing import Any

import cedarpy
import pytest

from sqlmode.policy import check_policies, server_policies
from sqlmode.policy.generate import cedar_string

from .conftest import POLICIES, policy_settings

SCHEMA = cedarpy.Schema.from_str((POLICIES / "sqlmode.cedarschema").read_text())


def _ids(config: dict[str, Any]) -> list[str]:
    return re.findall(r'@id\("([^"]+)"\)', server_policies(policy_settings(config)))


TABLES = {"tables": [{"name": "orders", "operations": ["read", "write", "delete"]}, {"name": "products"}]}


@pytest.mark.parametrize(
    ("config", "present", "absent"),
    [
        ({}, ["server.read-only-mode"], ["server.permit-write", "server.permit-delete"]),
        ({"code_mode": {"allow_writes": True}}, ["server.read-only-mode"], ["server.permit-write"]),
        (
            {"code_mode": {"allow_writes": True, "cedar_policies": {"read_only_mode": False}}},
            ["server.permit-write", "server.deletes-disabled"],
            ["server.read-only-mode", "server.permit-delete"],
        ),
        (
            {"code_mode": {"allow_deletes": True, "cedar_policies": {"read_only_mode": False}}},
            ["server.writes-disabled", "server.deletes-disabled"],
            ["server.permit-delete"],
        ),
        (
            {
                "database": TABLES,
                "code_mode": {
                    "allow_writes": True, "allow_deletes": True, "cedar_policies": {"read_only_mode": False}
                },
            },
            ["server.permit-write", "server.permit-delete", "server.table-operations.write",
             "server.table-operations.delete"],
            ["server.table-operations.read"],
        ),
        ({"database": TABLES}, [], ["server.table-operations.write", "server.table-operations.read"]),
        (
            {"code_mode": {"cedar_policies": {"block_introspection": False}}},
            ["server.max-depth", "server.max-fields", "server.max-joins", "server.max-complexity",
             "server.max-rows"],
            ["server.block-introspection"],
        ),
        (
            {"code_mode": {"blocked_tables": ["main.Audit_Log"], "blocked_fields": ["public.customers.SSN"]}},
            ["server.blocked-table.main.audit_log", "server.blocked-field.public.customers.ssn"],
            [],
        ),
    ],
)  # fmt: skip
def test_switches(config: dict[str, Any], present: list[str], absent: list[str]) -> None:
    ids = _ids(config)
    assert len(ids) == len(set(ids))
    for pid in present:
        assert pid in ids
    for pid in absent:
        assert pid not in ids
    text = server_policies(policy_settings(config))
    result = cedarpy.validate_policies(text, SCHEMA)
    assert result.validation_passed, [str(e) for e in result.errors]


def test_read_only_mode_says_it_wins_over_allow_writes() -> None:
    text = server_policies(policy_settings({"code_mode": {"allow_writes": True}}))
    assert "read_only_mode wins" in text


def test_limits_are_inlined_from_config() -> None:
    text = server_policies(
        policy_settings({"code_mode": {"max_rows": 50, "max_joins": 2, "cedar_policies": {"max_depth": 4}}})
    )
    assert "context.depth > 4" in text and "context.joins > 2" in text and "context.row_limit > 50" in text


def test_rendering_is_deterministic() -> None:
    cfg = {"code_mode": {"blocked_tables": ["b", "a", "A"], "blocked_fields": ["t.y", "t.x"]}}
    assert server_policies(policy_settings(cfg)) == server_policies(policy_settings(cfg))
    assert _ids(cfg)[_ids(cfg).index("server.blocked-table.a") + 1] == "server.blocked-table.b"


@pytest.mark.parametrize(
    "name", ['a"b', "a\\b", "a\nb", "tab\there", "ü", "\x01", "x; permit (principal, action, resource);"]
)
def test_cedar_string_escapes_round_trip(name: str) -> None:
    text = f"@id({cedar_string(name)}) permit (principal, action, resource);"
    node = next(iter(cedarpy.policies_to_pst(text).static_policies.values()))
    assert node.annotations["id"] == name


def test_hostile_blocked_names_still_validate() -> None:
    cfg = {"code_mode": {"blocked_tables": ['x") }; permit (principal, action, resource); //']}}
    report = check_policies(policy_settings(cfg))
    assert report.ok, str(report)
    assert (
        "permit (principal, action, resource);"
        not in report.effective_text.split("layer: server")[1].split("\n@id")[0]
    )
