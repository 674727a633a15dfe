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
    "novel.duckdb.typical.floor",
    "novel.duckdb.typical.validate",
    "novel.duckdb.typical.validate_repeated",
    "novel.duckdb.tpch_q5.validate",
    "novel.postgres.typical.validate",
    "novel.duckdb.rows10.raw",
    "novel.duckdb.rows1000.executor",
    "novel.postgres.rows10.service",
    "novel.postgres.rows1000.executor",
    "stdio.trivial.two_calls",
    "stdio.duckdb.novel",
    "stdio.duckdb.repeated",
    "stdio.postgres.novel",
    "stdio.duckdb.floor",
    "stdio.postgres.floor",
    "stdio.trivial.server_cpu",
    "stdio.duckdb.server_cpu",
    "stdio.postgres.server_cpu",
    "startup.trivial.first_list_tools",
    "startup.postgres.first_validate",
    "mem.duckdb.round_trips.growth_last_half",
    "mem.duckdb.round_trips.growth_beyond_driver",
    "mem.duckdb.raw_driver.growth_last_half",
    "mem.postgres.round_trips.growth_last_half",
    "mem.duckdb.rows1000.mcp",
    "mem.postgres.rows1000.service",
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
    "payload.tool_surface",
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
    for d in ("duckdb", "postgres"):
        validate = by_id[f"novel.{d}.typical.validate"]
        assert validate["floor"] == f"novel.{d}.typical.floor" and validate["ratio"] > 0
        assert validate["target"]["value"] == 2.0 and validate["target"]["ratio"] is True
        assert validate["passed"] in (True, False)
        assert by_id[f"novel.{d}.typical.validate_repeated"]["floor"] == validate["floor"]
        for rows, ratio in ((10, 1.25), (1000, 1.5)):
            ex = by_id[f"novel.{d}.rows{rows}.executor"]
            assert ex["floor"] == f"novel.{d}.rows{rows}.raw" and ex["target"]["value"] == ratio
        # The stdio floor holds the database's own run of the same query, beside the empty server.
        stdio = by_id[f"stdio.{d}.novel"]
        assert stdio["floor"] == f"stdio.{d}.floor" and stdio["target"]["value"] == 3.0
        assert stdio["extra"]["x_trivial_two_calls"] > 0
        assert by_id[f"stdio.{d}.floor"]["value"] > 0
        cpu = by_id[f"stdio.{d}.server_cpu"]
        assert cpu["floor"] == "stdio.trivial.server_cpu" and cpu["value"] > 0
        assert cpu["extra"]["client_cpu_ms"] > 0
    assert by_id["startup.first_list_tools"]["floor"] == "startup.trivial.first_list_tools"
    beyond = by_id["mem.duckdb.round_trips.growth_beyond_driver"]
    grown, driver = beyond["extra"]["growth_mib"], beyond["extra"]["driver_growth_mib"]
    assert beyond["target"]["value"] == 2.0 and math.isclose(beyond["value"], grown - driver, abs_tol=0.02)
    assert grown == round(by_id["mem.duckdb.round_trips.growth_last_half"]["value"], 2)
    surface, answer = by_id["payload.tool_surface"], by_id["payload.list_tools"]
    assert surface["target"]["value"] == 2500 and 0 < surface["value"] < answer["value"]
    # Every figure says how busy the machine was when it was taken.
    assert all(isinstance(f.get("load_1m"), float | int) for f in tiny_run["figures"])


@pytest.mark.slow
@pytest.mark.postgres
def test_novel_queries_reach_the_engine_every_time(tiny_run: dict[str, Any]) -> None:
    """Each novel round trip left its own engine confirmation behind: no call hit a cache."""
    by_id = {f["id"]: f for f in tiny_run["figures"]}
    for d in ("duckdb", "postgres"):
        f = by_id[f"mem.{d}.round_trips.growth_last_half"]
        caches = {c["cache"]: c for c in f["extra"]["caches"]}
        confirmed = caches["EngineConfirmer._cache"]["size"]
        assert confirmed >= 30 + 30, caches  # 30 warm-up + 30 measured round trips, all distinct
        assert f["extra"]["slope_mib_per_1000"] is not None
        undocumented = [c["cache"] for c in f["extra"]["caches"] if c["bound"] == "undocumented"]
        assert not undocumented, f"caches that grew but docs/caches.md does not list: {undocumented}"


@pytest.mark.slow
@pytest.mark.postgres
def test_readme_table_and_misses_render_from_the_run(tiny_run: dict[str, Any]) -> None:
    run = _run_module()
    section = run.render_readme_section(tiny_run)
    assert "| duckdb: validate_code in process, typical query |" in section
    assert "| postgres: validate + execute over stdio |" in section
    headline = {"novel.duckdb.typical.validate", "stdio.postgres.novel", "novel.postgres.rows10.executor"}
    for f in tiny_run["figures"]:
        if f.get("passed") is False and f["id"] in headline:
            assert f"**{f['label']}**" in section


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
                "id": "novel.duckdb.typical.validate",
                "group": "g",
                "label": "thing",
                "unit": "ms",
                "value": 3.5,
                "headline": True,
                "target": {"text": "<= 2 x floor", "source": "design target"},
                "passed": True,
                "load_1m": 1.5,
            }
        ],
        "errors": [],
    }
    assert run.update_readme(data, readme)
    text = readme.read_text(encoding="utf-8")
    assert text.index("## Performance") < text.index(run.README_START) < text.index("## Development")
    row = "| duckdb: validate_code in process, typical query | 3.50 ms |"
    assert row in text and "| <= 2 x floor: pass | 1.5 |" in text
    assert "python benchmarks/run.py" in text and "Every figure meets its target." in text
    data["figures"][0]["value"] = 4.5
    assert run.update_readme(data, readme)
    again = readme.read_text(encoding="utf-8")
    assert again.count(run.README_START) == 1 and "typical query | 4.50 ms |" in again and "3.50" not in again
    assert not run.update_readme(data, readme)  # unchanged figures: file untouched


def test_a_miss_says_why_from_figures_of_the_same_run() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from report import misses
    finally:
        sys.path.remove(str(BENCH))

    def fig(id: str, value: float, **kw: Any) -> dict[str, Any]:
        return {"id": id, "group": "g", "label": id, "unit": "ms", "value": value, **kw}

    target = {"text": "<= 1.25 x floor", "source": "design target", "value": 1.25, "ratio": True}
    data = {
        "figures": [
            fig("novel.duckdb.rows10.raw", 1.0),
            fig("novel.duckdb.rows10.executor", 1.1, floor="novel.duckdb.rows10.raw", ratio=1.1),
            fig(
                "novel.duckdb.rows10.service",
                4.0,
                floor="novel.duckdb.rows10.raw",
                ratio=4.0,
                target=target,
                passed=False,
            ),
        ]
    }
    text = misses(data)
    assert "**novel.duckdb.rows10.service**: 4.00 ms (4.00x)" in text
    assert "executor.run alone takes 1.10 ms in the same rounds: 2.90 ms is the governance" in text


def test_quantiles_match_the_usual_definition() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from common import stats_of
    finally:
        sys.path.remove(str(BENCH))
    s = stats_of([float(x) for x in range(1, 11)])
    assert (s.median, s.min, s.max, s.n) == (5.5, 1.0, 10.0, 10)
    assert s.p10 == pytest.approx(1.9) and s.p90 == pytest.approx(9.1)
