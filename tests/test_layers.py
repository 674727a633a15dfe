"""The layer rule (docs/architecture.md, "Layers"): a module imports only from layers to its left
(plus errors, models), and no module reaches itself again through its imports (function-local
imports included).

The graph is built by tests/layering.py, which also resolves imports through the root package and
importlib; tests/test_layers_mutations.py proves it catches those on a temporary copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.layering import ImportGraph, circle_path, import_circles, layer_violations

PKG = Path(__file__).resolve().parents[1] / "sqlmode"
# DESIGN: engines/base -> config -> schema -> analyze -> policy -> token/state -> execute -> engines ->
# audit -> service -> server/cli: the engine seam (engines/base: protocol, traits, registry) lowest,
# the engine modules after execute. This table and PLACEMENT are the one place the order lives.
LAYERS = [
    "seam",
    "config",
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
    # The engine seam (protocol, traits, registry) is lowest so that config can check database.url
    # and schema and analyze can ask an engine; the engine modules build on execute/ and register
    # themselves in the seam when the sqlmode.engines package is imported.
    "engines.base": "seam",
    "engines": "engines",
    # Builds and loads the sample warehouse through the engines.
    "sample": "service",
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
    "stdio": "server",
    "gcidle": "server",
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

GRAPH = ImportGraph(PKG)
# The package root re-exports the public API from every layer, so it is checked only for circles.
MODULES = sorted(m for m in GRAPH.files if m != "sqlmode")


def violations(graph: ImportGraph, module: str) -> list[str]:
    return layer_violations(graph, module, LAYERS, PLACEMENT, FREE)


def all_violations(graph: ImportGraph) -> list[str]:
    """Everything the layer test fails on, for one package: layers, circles, unresolved imports."""
    out = [v for m in sorted(graph.files) if m != "sqlmode" for v in violations(graph, m)]
    out += [f"import circle: {circle_path(graph, c)}" for c in import_circles(graph)]
    return out + graph.problems


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_layers_to_its_left(module: str) -> None:
    assert violations(GRAPH, module) == []


def test_no_import_circles_function_local_imports_included() -> None:
    assert [circle_path(GRAPH, c) for c in import_circles(GRAPH)] == []


def test_every_dynamic_import_resolves_to_named_modules() -> None:
    assert GRAPH.problems == []


def test_every_layer_has_a_module() -> None:
    # A layer with no module is a typo in LAYERS or PLACEMENT that would let everything through.
    from tests.layering import layer_of

    used = {layer_of(m, PLACEMENT) for m in MODULES}
    assert set(LAYERS) - used == set()
