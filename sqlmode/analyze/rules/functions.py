"""Functions: the allowlist over every call (table functions too), system-schema prefixes,
literal bounds on generators and padding, nested builders, casts to catalog types."""

from __future__ import annotations

import re

from sqlglot import exp

from ...models import Violation
from ..codes import violation
from ..foreign import function_refusal
from ..functions import argument_problem, refusal_code
from ..parse import sqlglot_dialect
from ..sizes import size_problem
from .base import RuleContext

_NAME = re.compile(r"[A-Za-z_][\w$]*")


def _as_written(node: exp.Expr, code: str) -> str | None:
    """The call's name as the query wrote it: sqlglot names a node by its class (``gen_random_uuid()``
    is a ``uuid`` node), and a refusal naming a function the query never called leaves the model
    guessing."""
    start, end = node.meta.get("start"), node.meta.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    text = code[start : end + 1]
    return text.lower() if _NAME.fullmatch(text) else None


def functions(ctx: RuleContext) -> list[Violation]:
    """The allowlist over every call, plus bounds on generators and builders; records
    ``ctx.functions``, the names called."""
    funcs, datatypes, rules = ctx.inventory.funcs, ctx.inventory.datatypes, ctx.rules
    out: list[Violation] = []
    names: set[str] = set()
    refused: dict[str, str] = {}
    policy = rules.functions
    for node in funcs:
        if isinstance(node, (exp.And, exp.Or, exp.Xor)):
            continue
        name = policy.name_of(node)
        parent = node.parent
        if isinstance(parent, exp.Dot) and node.arg_key == "expression":
            prefix = parent.this.sql().lower() if parent.this is not None else ""
            if prefix not in rules.traits.system_function_schemas:
                refused.setdefault(f"{prefix}.{name}", "FUNCTION_NOT_ALLOWED")
                continue
        table = node.parent if isinstance(node.parent, exp.Table) else None
        if table is not None and table.text("db"):
            prefix = table.text("db").lower()
            if prefix not in rules.traits.system_function_schemas:
                refused.setdefault(f"{prefix}.{name}", "FUNCTION_NOT_ALLOWED")
                continue
        if not policy.allows(node):
            refused.setdefault(_as_written(node, ctx.code) or name, refusal_code(name))
            continue
        names.add(name)
        problem = argument_problem(node)
        if problem:
            out.append(violation("FUNCTION_ARGUMENT_LIMIT", f"{problem}."))
    if not out and not refused:
        # Nested builders multiply: bounded before the engine folds them.
        problem = size_problem(funcs)
        if problem:
            out.append(violation("FUNCTION_ARGUMENT_LIMIT", f"{problem[0].upper()}{problem[1:]}."))
    for name, code in refused.items():
        foreign = function_refusal(name, rules.traits.display_name)
        if foreign is not None and code == "FUNCTION_NOT_ALLOWED":
            out.append(violation(code, *foreign))  # another dialect's: what to write instead
        elif code == "FUNCTION_NOT_ALLOWED":
            out.append(
                violation(
                    code,
                    f"Function `{name}` is not on the allowlist: it is not a {rules.traits.display_name} "
                    "analyst function sqlmode knows, or it has side effects, reaches files, network or "
                    "secrets, or runs SQL inside strings.",
                )
            )
        elif code == "FILE_ACCESS":
            out.append(violation(code, f"Function `{name}` reads files or URLs."))
        else:
            out.append(violation(code, f"Function `{name}` reads database metadata."))
    if rules.block_introspection:
        for dtype in datatypes:
            text = dtype.sql(sqlglot_dialect(rules.traits.sqlglot_dialect)).lower()
            if text.startswith("reg"):
                out.append(
                    violation("INTROSPECTION_BLOCKED", f"A cast to `{text}` looks up system catalogs.")
                )
                break
    ctx.functions = sorted(names)
    return out
