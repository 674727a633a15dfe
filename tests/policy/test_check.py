"""`sqlmode policy check`: every layer validated, problems named by file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sqlmode.policy import check_policies

from .conftest import POLICIES, policy_settings

GOOD = '@id("custom.ok")\n@reason("r")\nforbid (principal, action, resource) when { context.depth > 3 };\n'


def _check(tmp_path: Path, text: str, name: str = "custom.cedar"):
    f = tmp_path / name
    f.write_text(text)
    return f, check_policies(policy_settings({"policy": {"paths": [str(f)]}}))


def test_bundled_baseline_and_every_example_pass() -> None:
    report = check_policies(policy_settings({"policy": {"paths": [str(POLICIES / "examples")]}}))
    assert report.ok, str(report)
    assert report.warnings == []
    assert report.counts["baseline"] == 5 and report.counts["custom"] == 5
    text = str(report)
    assert text.startswith("policy check: OK")
    for marker in ("layer: baseline", "layer: server", "layer: custom", '@id("server.max-depth")'):
        assert marker in text
    assert report.policy_hash and report.policy_hash in text


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("// one\n// two\n" + GOOD.replace("forbid", "forbidd"), 3, "syntax error"),
        (
            GOOD + "\n\n" + GOOD.replace("custom.ok", "custom.two").replace(";", ""),
            6,
            "missing its closing `;`",
        ),
        ("\n" + GOOD.replace("context.depth", "context.depht"), 2, "depht"),
        (GOOD.replace("context.depth > 3", 'context.depth > "3"'), 1, "does not match the schema"),
        (GOOD.replace("resource)", 'resource in Tabel::"orders")'), 1, "Tabel"),
        (GOOD.replace("action,", 'action == Action::"drop",'), 1, "drop"),
        (GOOD + GOOD, 4, "duplicate @id('custom.ok'); first used at"),
        ('@id("t")\npermit (principal == ?principal, action, resource);\n', 1, "templates"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    f, report = _check(tmp_path, text)
    assert not report.ok
    problem = report.errors[0]
    assert (problem.file, problem.line) == (str(f), line), report.errors
    assert fragment in problem.message, problem.message
    rendered = str(report)
    assert rendered.startswith("policy check: FAILED") and f"{f}:{line}: error:" in rendered
    assert not report.policy_hash


def test_strings_with_semicolons_and_comments_do_not_confuse_lines(tmp_path: Path) -> None:
    text = (
        '@id("a")\n@reason("semi; colon // not a comment")\n'
        'forbid (principal, action, resource) when { context.tables.contains("x;y") };\n'
        "// a comment with a ; in it\n"
        '@id("b")\n@reason("r")\nforbid (principal, action, resource) when { context.nope };\n'
    )
    f, report = _check(tmp_path, text)
    assert [(p.file, p.line) for p in report.errors] == [(str(f), 5)]


def test_warnings_do_not_fail_the_check(tmp_path: Path) -> None:
    _, report = _check(
        tmp_path,
        "forbid (principal, action, resource) when { context.depth > 50 };\n"
        '@id("w")\n@code("lower-case")\n@owner("me")\n@reason("r")\nforbid (principal, action, resource);\n',
    )
    assert report.ok
    messages = " | ".join(p.message for p in report.warnings)
    assert "no @id" in messages and "custom.cedar#0" in messages
    assert "without @reason" in messages and "UPPER_SNAKE" in messages and "owner" in messages
    assert "warning:" in str(report)


def test_missing_path_is_reported(tmp_path: Path) -> None:
    report = check_policies(policy_settings({"policy": {"paths": [str(tmp_path / "nope.cedar")]}}))
    assert not report.ok and report.errors[0].file == str(tmp_path / "nope.cedar")
    assert "does not exist" in report.errors[0].message


def test_render_without_effective_text(tmp_path: Path) -> None:
    _, report = _check(tmp_path, GOOD)
    assert "layer: baseline" not in report.render(effective=False)
    assert "layer: baseline" in report.effective_text


def test_broken_schema_is_reported_and_policies_still_parsed(tmp_path: Path) -> None:
    base = tmp_path / "policies"
    shutil.copytree(POLICIES, base)
    (base / "sqlmode.cedarschema").write_text("entity User in [Nope];\n")
    report = check_policies(policy_settings(), base_dir=base)
    assert not report.ok
    assert report.errors[0].file == str(base / "sqlmode.cedarschema") and report.errors[0].line == 0
    assert "schema does not parse" in report.errors[0].message
    assert str(report.errors[0]).startswith(f"{base / 'sqlmode.cedarschema'}: error:")
