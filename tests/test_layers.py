"""The layer rule of DESIGN.md: a module imports only from layers to its left (plus errors, models)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sqlmode"
LAYERS = [
    "config",
    "seam",
    "schema",
    "analyze",
    "policy",
    "token",
    "execute",
    "engines",
    "audit",
    "service",
    "server",
]
# Top-level helper modules (or "package.module" where one package spans two layers) and their layer.
PLACEMENT = {
    "config": "config",
    # The engine seam (protocol, traits, registry) is low so that schema and analyze can ask an
    # engine; the engine modules build on execute/ and register themselves in the seam.
    "engines.base": "seam",
    "engines": "engines",
    "sample": "config",
    "dberrors": "config",
    "schema": "schema",
    "analyze": "analyze",
    "policy": "policy",
    "token": "token",
    "state": "token",
    "approval": "token",
    "execute": "execute",
    "audit": "audit",
    "service": "service",
    "workers": "service",
    "server": "server",
    "auth": "server",
    "access": "server",
    "web": "server",
    "cli": "server",
    "limits": "server",
    "output": "server",
    "demo": "server",
    "initconfig": "server",
    "__main__": "server",
}
FREE = {"errors", "models"}


def _layer_of(module: str) -> str | None:
    """'sqlmode.analyze.parse' -> 'analyze'."""
    parts = module.split(".")
    if parts[0] != "sqlmode" or len(parts) < 2:
        return None
    return PLACEMENT.get(".".join(parts[1:3]), PLACEMENT.get(parts[1], parts[1]))


def _imports(path: Path) -> list[str]:
    mod_parts = ["sqlmode", *path.relative_to(PKG).with_suffix("").parts]
    if mod_parts[-1] == "__init__":
        mod_parts = mod_parts[:-1]
    pkg_parts = mod_parts if path.name == "__init__.py" else mod_parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                out += names
            elif node.module and node.module.startswith("sqlmode"):
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("sqlmode")]
    return out


# The package root re-exports the public API from every layer, so it is not checked.
MODULES = sorted(p for p in PKG.rglob("*.py") if "_bundled" not in p.parts and p != PKG / "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_imports_only_layers_to_its_left(path: Path) -> None:
    rel = path.relative_to(PKG)
    own = _layer_of("sqlmode." + ".".join(rel.with_suffix("").parts))
    assert own in LAYERS or own in FREE, f"{rel} is in no known layer; add it to PLACEMENT"
    for target in _imports(path):
        layer = _layer_of(target)
        if layer is None or layer in FREE or layer == own:
            continue
        assert layer in LAYERS, f"{rel} imports {target}, which is in no known layer"
        if own in FREE:
            pytest.fail(f"{rel} is a shared module and must not import {target}")
        assert LAYERS.index(layer) < LAYERS.index(own), (
            f"{rel} ({own}) imports {target} ({layer}): a layer to its right"
        )
