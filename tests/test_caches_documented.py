"""Every cache in sqlmode/ is bounded and listed in docs/caches.md: novel queries must not grow memory."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "caches.md").read_text(encoding="utf-8")


def _decorator_name(d: ast.expr) -> tuple[str, ast.Call | None]:
    call = d if isinstance(d, ast.Call) else None
    target = call.func if call else d
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name, call


def _caches() -> list[tuple[str, str, ast.AST]]:
    """(file, name, node) for each memoizing decorator, OrderedDict attribute and cache-named dict."""
    found: list[tuple[str, str, ast.AST]] = []
    for path in sorted((ROOT / "sqlmode").rglob("*.py")):
        rel = str(path.relative_to(ROOT / "sqlmode"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for d in node.decorator_list:
                    if _decorator_name(d)[0] in ("lru_cache", "cache"):
                        found.append((rel, node.name, d))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                is_od = isinstance(value, ast.Call) and "OrderedDict" in ast.unparse(value.func)
                for t in targets:
                    name = t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", "")
                    if is_od or ("cache" in name.lower() and isinstance(value, ast.Dict | ast.Call)):
                        found.append((rel, name, node))
    return found


CACHES = _caches()


def test_the_scan_finds_the_known_caches() -> None:
    names = {name for _, name, _ in CACHES}
    assert {"engine_view", "_reparse", "may_change_session", "_cache"} <= names


@pytest.mark.parametrize(("file", "name", "node"), CACHES, ids=[f"{f}:{n}" for f, n, _ in CACHES])
def test_every_cache_is_documented_with_its_bound(file: str, name: str, node: ast.AST) -> None:
    assert f"`{name}`" in DOC or f"._{name.lstrip('_')}`" in DOC, (
        f"{file}: cache {name!r} is not listed in docs/caches.md (name, key, bound, why)"
    )
    if isinstance(node, ast.expr):
        dname, call = _decorator_name(node)
        if dname == "lru_cache":
            maxsize = next((k.value for k in (call.keywords if call else []) if k.arg == "maxsize"), None)
            assert isinstance(maxsize, ast.Constant) and isinstance(maxsize.value, int), (
                f"{file}: lru_cache on {name} needs an explicit integer maxsize"
            )
