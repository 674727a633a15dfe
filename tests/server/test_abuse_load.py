"""The bounded loopback load test of issue 18, short: one abusive credential, another's calls all answered.

benchmarks/bench_abuse.py runs a real `sqlmode serve --transport http`, a victim client here and an
abuser process (session flood, request flood, six heavy validations at a time). Checked: the victim
got every answer, the abuser was refused by each limit, the server is alive and its memory did not
follow the flood. The latencies are printed, never asserted (benchmarks/RESULTS.md has a longer run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import subprocess_env

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_abuse.py"


def test_one_abusive_credential_does_not_lock_out_another() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "3", "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    print({k: out[k] for k in ("quiet_p99_ms", "abused_p99_ms", "p99_ratio", "abuser")})
    assert out["victim_errors"] == 0, out["victim_error_samples"]
    assert out["quiet_calls"] > 0 and out["abused_calls"] > 0
    abuser = out["abuser"]
    assert abuser["ok"] <= 16  # server.max_sessions_per_credential: the rest were refused
    assert abuser["http_429"] > 0 and abuser["rate_limited_tool"] > 0
    assert out["server_alive_after"]
    assert out["rss_after_kb"] - out["rss_before_kb"] < 150_000  # the issue saw 206 -> 598 MB
