"""No dead code in sqlmode/: vulture finds nothing at 80% confidence beyond tests/vulture_whitelist.py.

At 80% and above vulture reports what cannot be used: unused imports, variables and parameters,
unreachable code. Below that it guesses about functions, methods and attributes, which here are
often called by a framework (click commands, MCP tools, pydantic validators, protocol methods) or
public API; those were reviewed by hand once and are not enforced.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHITELIST = ROOT / "tests" / "vulture_whitelist.py"


def test_vulture_finds_no_dead_code() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vulture",
            "sqlmode",
            str(WHITELIST),
            "--min-confidence",
            "80",
            "--exclude",
            "*/_bundled/*",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_every_whitelisted_name_is_still_in_the_package() -> None:
    names = {n.attr for n in ast.walk(ast.parse(WHITELIST.read_text())) if isinstance(n, ast.Attribute)}
    words = {w for p in (ROOT / "sqlmode").rglob("*.py") for w in re.findall(r"\w+", p.read_text())}
    assert names, "the whitelist lists nothing: is it still read?"
    assert sorted(names - words) == []
