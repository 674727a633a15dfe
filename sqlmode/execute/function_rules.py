"""Function policy from the catalog: a call passes only if the allowlist names it AND the database
says it is safe to call in a read-only query.

- Volatile functions (PostgreSQL ``provolatile = 'v'``; DuckDB ``has_side_effects`` or
  ``stability = 'VOLATILE'``: ``nextval``, ``setseed``, ``random``, a user function that
  writes) are refused unless ``code_mode.functions.allow_volatile`` names them.
- A user-defined function or macro answering to a built-in's name (``public.lower(integer)``
  beats ``pg_catalog.lower(text)`` for ``lower(5)``; a DuckDB macro ``lower`` replaces the
  built-in) is refused unless ``code_mode.functions.allow`` names it.
- A user-defined function the plan calls without the query naming it (a view's definition, a
  DuckDB macro's body) is refused unless ``code_mode.functions.allow`` names it.

Overloads are judged together: a name passes only if every overload the call could resolve
to passes (the catalog answers per name, the planner per argument types).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..analyze.codes import violation
from ..analyze.functions import FunctionPolicy
from ..config import FunctionConfig
from ..engines.base import EngineTraits, engine_named
from ..models import Violation
from ..schema.functions import FunctionCatalog

__all__ = ["check_calls", "engine_call_allowed"]

# Schemas whose functions are shown by bare name (where built-ins live and names resolve).
_DEFAULT_SCHEMAS = frozenset({"", "main", "pg_catalog", "system"})
# Always fine: the target of an alias that is syntax rather than a named call.
_SYNTAX_TARGETS = frozenset({"like_escape", "similar_to_escape", "overlaps", "normalize"})


def engine_call_allowed(policy: FunctionPolicy, traits: EngineTraits, schema: str, name: str) -> bool:
    """Whether a call the engine's parser sees is one the analyzer's allowlist allows."""
    full = f"{schema}.{name}" if schema else name
    aliases = traits.call_aliases
    target = aliases.get(full) or aliases.get(name)
    if target is not None:
        return target in _SYNTAX_TARGETS or target not in policy.denied_names
    if schema and schema not in traits.system_function_schemas:
        return False  # the analyzer refuses schema-qualified calls; the engine must not see one
    return name in policy.allowed_names and name not in policy.denied_names


def check_calls(
    calls: Iterable[tuple[str, str]],
    catalog: FunctionCatalog,
    config: FunctionConfig,
    *,
    from_plan: Iterable[tuple[str, str]] = (),
    written: Iterable[str] = (),
) -> list[Violation]:
    """Violations for calls (schema, name) by what the catalog says they resolve to.

    ``written``: the function names the analyzer read in the query text (a hint that suggests
    what to write instead of a call is only given for a call the query wrote).

    ``from_plan`` are the calls only the plan shows (not in the query text). Names the catalog
    does not know are syntax the plan prints (CASE, COALESCE, SubPlan) and are skipped: a
    call that really names a missing function fails to plan first (ENGINE_REFUSED).
    """
    allow = {n.lower() for n in config.allow}
    allow_volatile = {n.lower() for n in config.allow_volatile}
    plan_only = set(from_plan)
    wrote = {n.rsplit(".", 1)[-1].lower() for n in written}
    out: list[Violation] = []
    reported: set[tuple[str, str]] = set()  # (code, name): one violation per function name
    for schema, name in sorted(set(calls)):
        candidates = catalog.lookup(name, schema or None)
        if not candidates:
            continue
        shown = name if schema in _DEFAULT_SCHEMAS else f"{schema}.{name}"
        user = [c for c in candidates if not c.builtin]
        if user and name not in allow:
            where = ", ".join(sorted({f"{c.schema}.{c.name}" for c in user}))
            if catalog.has_builtin(name) and ("FUNCTION_SHADOWED", name) not in reported:
                reported.add(("FUNCTION_SHADOWED", name))
                out.append(
                    violation(
                        "FUNCTION_SHADOWED",
                        f"`{shown}` resolves to the user-defined {where}, which shadows the built-in {name}.",
                    )
                )
            elif not catalog.has_builtin(name) and ("FUNCTION_NOT_ALLOWED", name) not in reported:
                reported.add(("FUNCTION_NOT_ALLOWED", name))
                how = " (through a view or macro the query uses)" if (schema, name) in plan_only else ""
                out.append(
                    violation(
                        "FUNCTION_NOT_ALLOWED",
                        f"The database runs the user-defined function {where}{how}; user-defined "
                        "functions must be allowed by name in code_mode.functions.allow.",
                    )
                )
        volatile = [c for c in candidates if c.volatile]
        if volatile and name not in allow_volatile and ("FUNCTION_VOLATILE", name) not in reported:
            reported.add(("FUNCTION_VOLATILE", name))
            traits = engine_named(catalog.dialect).traits
            origin = "built-in" if all(c.builtin for c in volatile) else "user-defined"
            # Only for a call the query wrote (not one a macro or view body makes).
            instead = traits.volatile_alternatives.get(name) if name in wrote else None
            out.append(
                violation(
                    "FUNCTION_VOLATILE",
                    f"The database's catalog says the {origin} function `{shown}` {traits.volatile_wording}; "
                    "only immutable or stable functions run in Code Mode.",
                    instead,
                )
            )
    return out
