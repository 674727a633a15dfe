"""``sqlmode policy check``: validate every layer against the schema, name file and line.

cedarpy reports parse errors without a position and validation errors by positional
policy id, so the checker works statement by statement (see
:func:`.source.split_statements`) and reports the line each failing statement starts on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cedarpy

from ..config import Settings
from ..errors import PolicyError
from .source import Sources, Statement, effective_text, load_sources, policy_hash_of, split_statements

_KNOWN_ANNOTATIONS = {"id", "code", "reason", "hint"}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_POLICY_PREFIX = re.compile(r"^for policy `[^`]*`,\s*")
_FOR_ACTION = re.compile(r' for Action::"[^"]*"')


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One finding: where (file, line; line 0 = the whole file) and what."""

    file: str
    line: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"


@dataclass(slots=True)
class PolicyReport:
    """The result of checking all policy layers. ``str(report)`` is the printable form."""

    errors: list[PolicyProblem] = field(default_factory=list)
    warnings: list[PolicyProblem] = field(default_factory=list)
    effective_text: str = ""
    schema_file: str = ""
    policy_hash: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # policies per layer

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self, *, effective: bool = True) -> str:
        """Summary, then problems as ``file:line: severity: message``, then the effective set."""
        total = sum(self.counts.values())
        layers = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        head = "OK" if self.ok else f"FAILED ({len(self.errors)} error{'s' * (len(self.errors) != 1)})"
        lines = [f"policy check: {head}: {total} policies ({layers}); schema {self.schema_file}"]
        if self.ok and self.policy_hash:
            lines.append(f"policy hash: {self.policy_hash}")
        lines += [f"  {p}" for p in (*self.errors, *self.warnings)]
        if effective and self.effective_text:
            lines += ["", "// ===== effective policy set =====", self.effective_text.rstrip()]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.render()


def check_policies(settings: Settings, *, base_dir: Path | None = None) -> PolicyReport:
    """Load and check the schema, the baseline, the server layer and the custom files.

    ``base_dir`` replaces the bundled ``policies/`` folder (schema and baseline).
    """
    try:
        sources = load_sources(settings, base_dir)
    except PolicyError as e:
        report = PolicyReport()
        report.errors.append(PolicyProblem(str(e.data.get("path", "<config>")), 0, e.message))
        return report
    return check_sources(sources)


def check_sources(sources: Sources) -> PolicyReport:
    """Check already-read sources (the engine calls this to explain a failed load)."""
    report = PolicyReport(schema_file=str(sources.schema_path))
    try:
        schema: cedarpy.Schema | None = cedarpy.Schema.from_str(sources.schema_text)
    except ValueError as e:
        schema = None
        report.errors.append(PolicyProblem(str(sources.schema_path), 0, f"schema does not parse: {e}"))

    seen_ids: dict[str, Statement] = {}
    for src in sources.layers:
        statements = split_statements(src)
        report.counts[src.layer] = report.counts.get(src.layer, 0) + len(statements)
        for n, st in enumerate(statements):
            _check_statement(report, st, n, schema, seen_ids)

    report.effective_text = effective_text(sources)
    if report.ok:
        report.policy_hash = policy_hash_of(sources.schema_text, report.effective_text)
    return report


def _check_statement(
    report: PolicyReport,
    st: Statement,
    n: int,
    schema: cedarpy.Schema | None,
    seen_ids: dict[str, Statement],
) -> None:
    def problem(message: str, severity: str = "error") -> None:
        target = report.errors if severity == "error" else report.warnings
        target.append(PolicyProblem(st.source.name, st.line, message, severity))

    try:
        pst = cedarpy.policies_to_pst(st.text)
    except ValueError as e:
        text = str(e)
        if not st.text.rstrip().endswith(";"):
            text += " (is the policy missing its closing `;`?)"
        problem(f"syntax error: {text}")
        return
    node = next(iter(pst.static_policies.values()), None)
    if node is None:
        problem("templates (?principal / ?resource slots) are not supported here; write a static policy")
        return

    if schema is not None:
        result = cedarpy.validate_policies(st.text, schema)
        # The validator repeats one problem per applicable action; report it once.
        for msg in dict.fromkeys(_FOR_ACTION.sub("", _POLICY_PREFIX.sub("", e.error)) for e in result.errors):
            problem(f"does not match the schema: {msg}")

    ann = node.annotations
    pid = ann.get("id")
    if not pid:
        problem(
            f"no @id annotation; decisions will call it {st.source.name.rsplit('/', 1)[-1]}#{n}", "warning"
        )
    elif pid in seen_ids:
        first = seen_ids[pid]
        problem(f"duplicate @id({pid!r}); first used at {first.source.name}:{first.line}")
    else:
        seen_ids[pid] = st
    code = ann.get("code")
    if code is not None and not _CODE.match(code):
        problem(f"@code({code!r}) should be UPPER_SNAKE, like POLICY_DENIED", "warning")
    if node.effect == "forbid" and not ann.get("reason"):
        problem("forbid without @reason; the refusal will only name the policy id", "warning")
    unknown = sorted(set(ann) - _KNOWN_ANNOTATIONS)
    if unknown:
        problem(f"annotations {unknown} are not read by sqlmode (known: id, code, reason, hint)", "warning")


__all__ = ["PolicyProblem", "PolicyReport", "check_policies", "check_sources"]
