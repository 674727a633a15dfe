"""benchmarks/bench_server.py runs end to end (2 s of load) and 32 concurrent HTTP clients see no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import subprocess_env

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_server.py"


def test_bench_server_smoke() -> None:
    args = ["--duration", "2", "--rounds", "10", "--clients", "32", "--stdio-modes", "auto", "--json"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)
    assert figures["http_clients"] == 32 and figures["http_errors"] == 0
    assert figures["http_round_trips"] > 0 and figures["http_p99_ms"] >= figures["http_p50_ms"] > 0
    for key in ("stdio_round_trip_ms", "inprocess_mcp_round_trip_ms", "pipeline_round_trip_ms"):
        assert figures[key] > 0, key
