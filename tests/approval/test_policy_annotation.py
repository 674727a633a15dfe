"""A Cedar permit annotated @approval makes what it allows wait for a human approver (table, principal)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sqlmode.config import Settings
from sqlmode.errors import ApprovalPending
from sqlmode.service import CodeModeService

POLICY = """
@id("orders-need-approval")
@approval("orders are audited")
permit(principal, action == Action::"read", resource in Table::"orders");

@id("interns-need-approval")
@approval("")
permit(principal in Group::"interns", action == Action::"read", resource);
"""


@pytest.mark.parametrize(
    "user, sql, why",
    [
        (
            "ana",
            "SELECT id, total FROM orders ORDER BY id",
            "policy orders-need-approval: orders are audited",
        ),
        ("ana", "SELECT id, name FROM products ORDER BY id", None),
        ("ivy", "SELECT id, name FROM products ORDER BY id", "policy interns-need-approval"),
    ],
)
async def test_an_approval_annotation_demands_approval_for_a_table_or_a_principal(
    make_settings: Callable[..., Settings], tmp_path: Path, user: str, sql: str, why: str | None
) -> None:
    policy = tmp_path / "approval.cedar"
    policy.write_text(POLICY)
    settings = make_settings(
        {"policy": {"paths": [str(policy)], "users": {"ivy": {"groups": ["interns"]}, "ana": {"groups": []}}}}
    )
    async with CodeModeService(settings) as svc:
        v = await svc.validate(sql, user=user)
        assert v.is_valid, v.violations
        if why is None:
            assert v.approval is None
            r = await svc.execute(v.normalized_code, v.approval_token or "", user=user)
            assert r.row_count > 0
            return
        assert v.approval is not None and v.approval.approvers == "approvers"
        with pytest.raises(ApprovalPending) as caught:
            await svc.execute(v.normalized_code, v.approval_token or "", user=user)
        rec = await svc.approvals.get(caught.value.data["id"])
        assert rec is not None and rec["status"] == "pending" and why in rec["reasons"]
