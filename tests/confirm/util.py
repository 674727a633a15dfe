"""Small helpers shared by the confirmation tests."""

from __future__ import annotations

from sqlmode.models import ValidationResult
from sqlmode.service import CodeModeService


def codes(v: ValidationResult) -> list[str]:
    return [x.code for x in v.violations]


async def analyzer_alone_passes(svc: CodeModeService, sql: str) -> bool:
    """What the analyzer says without the database: the case must be one it cannot see."""
    return svc.analyzer.analyze(sql, await svc.schema()).ok


async def refused_by_engine(svc: CodeModeService, sql: str, code: str) -> ValidationResult:
    """Validate ``sql``: the analyzer alone passes it, the engine confirmation refuses it with ``code``."""
    assert await analyzer_alone_passes(svc, sql), f"the analyzer alone already refuses {sql!r}"
    v = await svc.validate(sql)
    assert not v.is_valid and v.approval_token is None, v
    assert code in codes(v), v.violations
    return v
