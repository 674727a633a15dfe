"""Fold in the component scripts other modules own, so each figure has one source of truth.

- ``bench_governance.py``: the Cedar decision with the cached PolicySet and token mint + verify
  (imported; its ``run()`` returns medians in ms).
- ``bench_analyze.py``, ``bench_execute.py``, ``bench_server.py``: run as subprocesses with
  ``--json`` when they offer it; a JSON object of numbers becomes figures, anything else is kept
  verbatim in ``components`` of the results.

A script that has not landed yet is reported as an error, never silently skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import ROOT, Results, Target, stats_of
from env import BenchEnv

HERE = Path(__file__).resolve().parent
GROUP = "governance"
GOV_TARGETS = {
    "cedar_decision": (
        Target("<", 0.2, "ms", "issue 5"),
        "Cedar decision, cached PolicySet, six-table analysis (allowed)",
    ),
    "cedar_decision_denied": (Target("<", 0.2, "ms", "issue 5"), "Cedar decision, cached PolicySet (denied)"),
    "token_mint_verify": (Target("<", 0.05, "ms", "issue 5"), "approval token mint + verify"),
    "policy_hash": (None, "policy hash lookup"),
}


def governance(results: Results) -> None:
    """bench_governance.run(), repeated so that each figure has a spread of medians."""
    import bench_governance

    reps = 2 if results.tiny else 3 if results.quick else 7
    number = 20 if results.tiny else 300 if results.quick else 2000
    runs = [bench_governance.run(rounds=3, number=number) for _ in range(reps)]
    for key in runs[0]:
        target, label = GOV_TARGETS.get(key, (None, key.replace("_", " ")))
        results.add(
            f"governance.{key}",
            GROUP,
            label,
            stats_of([r[key] for r in runs]),
            target=target,
            note=f"bench_governance.py: {reps} runs x 3 rounds x {number} calls; spread across runs",
        )


def _help(script: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    return out.stdout + out.stderr


def subprocess_script(results: Results, name: str, timeout: float) -> dict[str, Any] | None:
    """Run ``benchmarks/<name>.py`` with --json/--quick when offered; keep its output."""
    script = HERE / f"{name}.py"
    if not script.exists():
        results.error(name, "not in the tree yet: its figures are missing from this run")
        return None
    flags = _help(script)
    if results.tiny:  # the smoke test only checks that it starts; its owner tests it
        results.components.append(
            {"script": f"{name}.py", "args": ["--help"], "returncode": 0, "stdout": flags}
        )
        return None
    args = [sys.executable, str(script)]
    if "--json" in flags:
        args.append("--json")
    if results.quick and "--quick" in flags:
        args.append("--quick")
    try:
        out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        results.error(name, f"timed out after {timeout:.0f} s")
        return None
    record = {
        "script": f"{name}.py",
        "args": args[2:],
        "returncode": out.returncode,
        "stdout": out.stdout[-20000:],
    }
    if out.returncode != 0:
        results.error(name, f"exit {out.returncode}: {out.stderr.strip()[-500:]}")
    results.components.append(record)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


async def run(env: BenchEnv, results: Results) -> None:
    try:
        governance(results)
    except Exception as e:
        results.error("bench_governance", f"{type(e).__name__}: {e}")
    for name, timeout in (("bench_analyze", 300), ("bench_execute", 300), ("bench_server", 400)):
        subprocess_script(results, name, timeout / (3 if results.quick else 1))


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
