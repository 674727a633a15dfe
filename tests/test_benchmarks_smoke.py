"""The benchmark suite runs end to end on a tiny setting. Timings are never asserted here.

The suite runs as its users run it (``python benchmarks/run.py``), in a subprocess, against the
PostgreSQL server of this test session (passed as SQLMODE_TEST_POSTGRES_URL; the suite creates and
drops its own databases there).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

# One figure per module and dialect that must come out of every run.
EXPECTED = (
    "validate.audit.append",
    "validate.duckdb.typical.parse",
    "validate.duckdb.typical.analyze",
    "validate.duckdb.typical.validate",
    "validate.postgres.typical.validate",
    "validate.duckdb.tpch_q5.analyze",
    "validate.schema100.typical",
    "validate.qsize4.analyze",
    "confirm.duckdb.typical.increment_cold",
    "confirm.postgres.typical.increment_cold",
    "exec.duckdb.rows10.raw",
    "exec.duckdb.rows10.executor",
    "exec.duckdb.rows10.service",
    "exec.duckdb.rows10.mcp",
    "exec.postgres.rows10.raw",
    "exec.postgres.rows10.mcp",
    "mem.duckdb.executor",
    "mem.postgres.executor",
    "payload.list_tools",
    "payload.result100.text",
    "payload.schema",
    "scale.duckdb.s1.validate_execute",
    "scale.postgres.s1.validate_execute",
    "startup.first_list_tools",
    "stdio_sessions.errors",
    "governance.cedar_decision",
    "governance.token_mint_verify",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = {**os.environ, "SQLMODE_TEST_POSTGRES_URL": pg_admin_url}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.exists(), f"run.py wrote no results (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(out.read_text(encoding="utf-8"))
    data["_proc"] = {"returncode": proc.returncode, "stderr": proc.stderr[-4000:]}
    return data


@pytest.mark.slow
@pytest.mark.postgres
def test_suite_runs_every_module_without_errors(tiny_run: dict[str, Any]) -> None:
    assert tiny_run["errors"] == [], tiny_run["_proc"]["stderr"]
    assert tiny_run["_proc"]["returncode"] == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_every_expected_figure_is_a_finite_number(tiny_run: dict[str, Any]) -> None:
    by_id = {f["id"]: f for f in tiny_run["figures"]}
    missing = [i for i in EXPECTED if i not in by_id]
    assert not missing, f"missing figures {missing}; errors: {tiny_run['errors']}"
    for f in tiny_run["figures"]:
        assert isinstance(f["value"], int | float) and math.isfinite(f["value"]), f
        if "stats" in f:
            assert f["stats"]["n"] >= 1 and f["stats"]["p10"] <= f["stats"]["median"] <= f["stats"]["p90"], f


@pytest.mark.slow
@pytest.mark.postgres
def test_results_record_machine_versions_and_date(tiny_run: dict[str, Any]) -> None:
    meta = tiny_run["meta"]
    assert meta["date"] and meta["cpu_count"] and meta["python"]
    assert meta["versions"]["sqlglot"] and meta["versions"]["duckdb"]
    assert meta["postgres_server"]
    assert meta["tiny"] is True


@pytest.mark.slow
@pytest.mark.postgres
def test_floors_and_targets_are_side_by_side(tiny_run: dict[str, Any]) -> None:
    by_id = {f["id"]: f for f in tiny_run["figures"]}
    for layer in ("executor", "service", "mcp"):
        f = by_id[f"exec.duckdb.rows10.{layer}"]
        assert f["floor"] == "exec.duckdb.rows10.raw" and f["ratio"] > 0
    validate = by_id["validate.duckdb.typical.validate"]
    assert validate["floor"] == "validate.duckdb.typical.parse"
    assert validate["target"]["value"] == 1.0 and validate["passed"] in (True, False)
    assert by_id["payload.list_tools"]["target"]["value"] == 2500


def _run_module() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import run

        return run
    finally:
        sys.path.remove(str(BENCH))


def test_readme_section_is_added_before_development_then_replaced(tmp_path: Path) -> None:
    run = _run_module()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nintro\n\n## Development\n\ntests\n", encoding="utf-8")
    data: dict[str, Any] = {
        "meta": {"date": "2026-01-01", "quick": False},
        "figures": [
            {
                "id": "a",
                "group": "g",
                "label": "thing",
                "unit": "bytes",
                "value": 10,
                "headline": True,
                "target": {"text": "<= 20 bytes", "source": "DESIGN.md"},
                "passed": True,
            }
        ],
        "errors": [],
    }
    assert run.update_readme(data, readme)
    text = readme.read_text(encoding="utf-8")
    assert text.index("## Performance") < text.index(run.README_START) < text.index("## Development")
    assert "| thing | 10 B |" in text and "<= 20 bytes (DESIGN.md) | pass |" in text
    assert "python benchmarks/run.py" in text
    data["figures"][0]["value"] = 20
    assert run.update_readme(data, readme)
    again = readme.read_text(encoding="utf-8")
    assert again.count(run.README_START) == 1 and "| thing | 20 B |" in again and "10 B" not in again
    assert not run.update_readme(data, readme)  # unchanged figures: file untouched


def test_quantiles_match_the_usual_definition() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from common import stats_of
    finally:
        sys.path.remove(str(BENCH))
    s = stats_of([float(x) for x in range(1, 11)])
    assert (s.median, s.min, s.max, s.n) == (5.5, 1.0, 10.0, 10)
    assert s.p10 == pytest.approx(1.9) and s.p90 == pytest.approx(9.1)
