"""The layer test's checker catches each way of reaching a layer to the right, and each circle.

Every case edits a temporary copy of sqlmode/ (the real package is never touched) and asserts that
``all_violations`` of tests/test_layers.py names the edited file. The unedited copy is clean, so a
finding can only come from the edit. The first two cases passed all the layer tests of the first
version of this checker.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.layering import ImportGraph
from tests.test_layers import PKG, all_violations

LOCAL = "def _m(name=None):\n    {}\n    return _x\n"  # a function-local import, as in the code


def local(stmt: str) -> str:
    return LOCAL.format(stmt.replace("\n", "\n    "))


# id -> (file, code appended to it)
MUTATIONS = {
    "root package, lazy name": ("config.py", "from sqlmode import CodeModeService\n"),
    "root package, eager name, into a shared module": ("models.py", "from sqlmode import Settings\n"),
    "relative root, function-local": ("config.py", local("from . import CodeModeService as _x")),
    "attribute chain on the root": ("models.py", "import sqlmode\n\n" + local("_x = sqlmode.service.X")),
    "aliased root, lazy name": ("config.py", "import sqlmode as _s\n\n" + local("_x = _s.AuditSink")),
    "root handed to getattr": ("config.py", "import sqlmode\n\n" + local("_x = getattr(sqlmode, name)")),
    "subpackage re-export": ("schema/names.py", "from sqlmode.policy import CedarEvaluator\n"),
    "importlib, literal": (
        "config.py",
        "import importlib\n\n_M = importlib.import_module('sqlmode.service')\n",
    ),
    "import_module relative to __package__": (
        "models.py",
        "from importlib import import_module\n\n" + local("_x = import_module('.audit', __package__)"),
    ),
    "importlib, module-level constant": (
        "config.py",
        "import importlib\n\n_TARGET = 'sqlmode.cli'\n\n" + local("_x = importlib.import_module(_TARGET)"),
    ),
    "__import__": ("config.py", "_M = __import__('sqlmode.server')\n"),
    "importlib, f-string of constants": (
        "analyze/parse.py",
        local("import importlib\n_x = importlib.import_module(f'.{\"execute\"}.writes', 'sqlmode')"),
    ),
    "importlib, computed name": ("config.py", local("import importlib\n_x = importlib.import_module(name)")),
    # Same layer on both sides, so only the circle check can see these.
    "function-local circle": ("policy/source.py", local("from .check import check_sources as _x")),
    "circle through a package __init__": (
        "analyze/parse.py",
        local("from sqlmode.analyze import Analyzer as _x"),
    ),
}
# Edits the rule allows: the checker must not fail on these (it is no use if it fails on anything).
ALLOWED = {
    "a shared module through the root": ("config.py", "from sqlmode import SqlmodeError\n"),
    "importlib of a layer to the left": (
        "execute/convert.py",
        local("import importlib\n_x = importlib.import_module('sqlmode.config')"),
    ),
    "a bare import of the root": (
        "schema/names.py",
        "import sqlmode\n\n" + local("_x = sqlmode.config.Settings"),
    ),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    shutil.copytree(PKG, root / "sqlmode", ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    return root / "sqlmode"


def test_the_unedited_copy_is_clean(pristine: Path) -> None:
    assert all_violations(ImportGraph(pristine)) == []


def findings_after(pristine: Path, tmp_path: Path, path: str, code: str) -> list[str]:
    """``all_violations`` of a copy of the package with ``code`` appended to ``path``."""
    pkg = tmp_path / "sqlmode"
    shutil.copytree(pristine, pkg)
    target = pkg / path
    target.write_text(target.read_text() + "\n\n" + code)
    return all_violations(ImportGraph(pkg))


@pytest.mark.parametrize("why", MUTATIONS)
def test_checker_fails_on_mutation(pristine: Path, tmp_path: Path, why: str) -> None:
    path, code = MUTATIONS[why]
    found = findings_after(pristine, tmp_path, path, code)
    assert any(f"sqlmode/{path}" in v for v in found), found


@pytest.mark.parametrize("why", ALLOWED)
def test_checker_allows_imports_to_the_left(pristine: Path, tmp_path: Path, why: str) -> None:
    path, code = ALLOWED[why]
    assert findings_after(pristine, tmp_path, path, code) == []
