"""The SQL analyzer: layer 1 of the security model, failing closed.

    from sqlmode.analyze import Analyzer
    analyzer = Analyzer(settings)               # rules derived once; engine from database.url
    analysis = analyzer.analyze(code, snapshot) # never raises

Stages, one module each: parse (sqlglot + the engine's own parser), classify (statement
kind and every refused node), references (tables and columns resolved to base reads),
rules (policy checks), complexity, rewrite (LIMIT, rendering), explain. Any exception
anywhere becomes an ANALYSIS_FAILED violation: a crash is never a pass.

What differs between engines (sqlglot's dialect, the default schema, case rules, the
engine's own parser) comes from the :class:`~sqlmode.engines.base.Engine` given, or the one
``database.url`` names: nothing here compares engine names.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping

from sqlglot import exp
from sqlglot.errors import UnsupportedError

from ..config import Settings
from ..engines.base import Engine, EngineTraits, settings_engine
from ..models import Action, Analysis, Violation
from ..schema.snapshot import SchemaSnapshot
from . import classify as _classify
from . import parse as _parse
from .codes import VIOLATION_CODES, Refusal, violation
from .complexity import risk_level
from .explain import explain
from .foreign import syntax_hint
from .names import alias_order_by_output_names, keep_output_names
from .pivot import (
    hoist_statement_ctes,
    unlisted_pivot,
    unlisted_pivots,
    without_pivot_listing,
    wrap_cte_pivots,
)
from .rewrite import TableColumn, TableColumns, inject_limit, match_cte_names, render, spell_out_stars
from .roundtrip import check_round_trip
from .rules import RuleContext, RuleSet, run_rules
from .rules.blocked_columns import DATE_PART_HINT

__all__ = ["VIOLATION_CODES", "Analyzer"]


_log = logging.getLogger("sqlmode.analyze")


class Analyzer:
    """Analyzes one piece of code at a time against a schema snapshot."""

    def __init__(self, settings: Settings, engine: Engine | None = None):
        self.settings = settings
        self.engine = engine if engine is not None else settings_engine(settings)
        self.traits = self.engine.traits
        if self.traits.sqlglot_setup is not None:
            self.traits.sqlglot_setup()
        # The engine's name, reported as the analysis' dialect.
        self.dialect = self.traits.name
        self.rules = RuleSet.from_settings(settings, self.traits)

    def analyze(self, code: str, snapshot: SchemaSnapshot, *, explanation: bool = True) -> Analysis:
        """The verdict on ``code``; never raises (a failure is an ANALYSIS_FAILED violation).

        Without ``explanation`` the plain-language account is left empty (execute_code shows none).
        """
        analysis = Analysis(dialect=self.dialect, code=code if isinstance(code, str) else repr(code))
        try:
            self._analyze(code, snapshot, analysis, explanation)
        except Refusal as r:
            _extend(analysis, r.violations)
        except RecursionError:
            _extend(analysis, [violation("QUERY_TOO_LARGE", "The query is nested too deeply to analyze.")])
        except UnsupportedError as e:
            # sqlglot has no rendering of the construct in this dialect (often a function the
            # engine does not have: to_char on DuckDB): the model needs the engine's own spelling.
            refusal = violation(
                "ANALYSIS_FAILED",
                f"The query cannot be rendered safely for {self.traits.display_name}: {e}",
                _unrendered_hint(str(e), self.traits.missing_functions)
                or f"Write that part with {self.traits.display_name}'s own functions and syntax.",
            )
            _extend(analysis, [self._with_notes(refusal)])
        except Exception as e:  # fail closed on anything unexpected
            # The exception's text is sqlmode's internals, not something the model can act on:
            # it goes to the operator's log; the model gets the refusal and a way forward.
            _log.warning("analyzer failure on %r", analysis.code[:2000], exc_info=True)
            _extend(
                analysis,
                [
                    violation(
                        "ANALYSIS_FAILED",
                        f"sqlmode's analyzer failed on this query ({type(e).__name__}, logged for the "
                        "operator); write the unusual construct in plainer SQL.",
                    )
                ],
            )
        if analysis.violations:
            analysis.normalized_code = ""
            analysis.row_limit = 0
        analysis.risk_level = risk_level(
            analysis.action, analysis.complexity.score, self.rules.max_complexity
        )
        return analysis

    # -- the pipeline --------------------------------------------------------------------

    def _analyze(self, code: str, snapshot: SchemaSnapshot, a: Analysis, explanation: bool = True) -> None:
        rules = self.rules
        dialect = self.traits.sqlglot_dialect
        code = _parse.unwrap(code)  # a markdown fence or a byte-order mark around the SQL
        _parse.precheck(code)
        try:
            parsed = _parse.parse_one(code, dialect)
        except Refusal as r:
            raise self._unreadable(code, r) from None
        # DuckDB's `WITH c AS (...) PIVOT c ...`: the CTEs move into the source (pivot.py).
        root = wrap_cte_pivots(hoist_statement_ctes(parsed))  # and a PIVOT as a CTE's body
        match_cte_names(root)  # `WITH Monthly AS (...) ... FROM monthly` names the CTE (rewrite.py)
        try:
            # Engines hash by identity; the Engine protocol type does not say so to mypy.
            view = _parse.engine_view(code, self.engine)  # type: ignore[arg-type]
        except Refusal as r:
            # Still classify, so that the answer also names what the statement would have done.
            cls = _classify.classify(root, allow_writes=rules.allow_writes, allow_deletes=rules.allow_deletes)
            a.statement_type, a.action = cls.statement_type, cls.action
            _extend(a, self._other_dialect(code, r.violations) + cls.violations)
            return
        if len(view.types) > 1:
            raise Refusal(
                violation(
                    "MULTIPLE_STATEMENTS",
                    f"The database's parser sees {len(view.types)} statements "
                    f"({', '.join(view.types)}); exactly one is allowed.",
                )
            )
        if not view.types:
            raise Refusal(violation("PARSER_DISAGREEMENT", "The database's parser sees no statement at all."))

        # PostgreSQL's ORDER BY naming a result column by its unaliased name (names.py).
        alias_order_by_output_names(root, code, self.engine, snapshot, written=view)
        cls = _classify.classify(root, allow_writes=rules.allow_writes, allow_deletes=rules.allow_deletes)
        a.statement_type = cls.statement_type
        a.action = cls.action
        _extend(a, cls.violations)
        expected = "SELECT" if cls.is_query else cls.statement_type
        engine_type = view.types[0]
        if engine_type != expected:
            unlisted = unlisted_pivots(root) if engine_type == "MULTI" else []
            if unlisted:
                # The service may list its values (pivot.py); alone, the analyzer refuses it.
                _extend(a, [unlisted_pivot(p, dialect) for p in unlisted[:1]])
            elif not a.violations:
                _extend(
                    a,
                    [
                        violation(
                            "PARSER_DISAGREEMENT",
                            f"The analyzer reads a {expected} statement; the database's parser "
                            f"reads a {engine_type}.",
                        )
                    ],
                )
        # The engine's own tree is a backstop: report what it sees that sqlglot did not.
        present = {v.code for v in a.violations}
        engine_codes = self.engine.native_refusals(view, root_is_write=not cls.is_query)
        _extend(a, [violation(c) for c in engine_codes if c not in present])

        runnable = cls.resolve and (cls.is_query or a.action in (Action.WRITE, Action.DELETE))
        if not runnable or any(v.code in _STOP_CODES for v in a.violations):
            return

        inv = cls.inventory or _classify.survey(root)[1]
        ctx = self._checked(a, code, root, snapshot, inv)
        if self.traits.spells_out_stars and cls.is_query and not a.violations and ctx.refs.lazy_stars:
            spelled = spell_out_stars(
                root,
                ctx.refs.lazy_stars,
                self._read_columns(snapshot, ctx.refs.reads),
                self.traits.sqlglot_dialect,
                ctx.refs.spelled_stars,
            )
            if spelled is None:
                # A materialized CTE's or a UNION ALL branch's star cannot be written out: it is
                # read whole, as the engine reads it (the other lazy stars are written out as usual).
                whole = dataclasses.replace(self.traits, spells_out_stars=False)
                ctx = self._checked(a, code, root, snapshot, inv, whole)
                if not a.violations and ctx.refs.lazy_stars:
                    spell_out_stars(
                        root,
                        ctx.refs.lazy_stars,
                        self._read_columns(snapshot, ctx.refs.reads),
                        self.traits.sqlglot_dialect,
                    )
        a.tables = sorted(ctx.tables)
        a.columns = ctx.columns
        a.functions = ctx.functions
        a.complexity = ctx.complexity
        a.max_block_joins = ctx.blocks[0].joins if ctx.blocks else 0
        a.catalog = ctx.catalog
        # Each table's schema, so policies may name it `schema.table` as well as by its key.
        a.table_schemas = {k: t.schema.lower() for k in ctx.tables if (t := snapshot.table(k)) and t.schema}

        if self.traits.qualifies_other_schemas and cls.is_query and not a.violations:
            _qualify_other_schemas(ctx.refs.tables, snapshot, self.traits.default_schema)
        limited = inject_limit(root, rules.max_rows) if cls.is_query else None
        final_root = limited.root if limited is not None else root
        if explanation:
            # A wrapped query is explained as written: the outer SELECT * only caps its rows.
            shown = root if limited is not None and limited.source == "wrapped" else final_root
            a.explanation = explain(shown, limited, dialect)
        if a.violations:
            return
        normalized = self._render(final_root, code)
        # The result's columns keep the names the database gives the text as written (names.py).
        if keep_output_names(code, normalized, final_root, self.engine, written=view):
            normalized = self._render(final_root, code)
        # What runs is the rendering: the engine must read it as one statement of the same kind.
        if not _parse.confirm_rendered(normalized, self.engine, expected):
            raise Refusal(
                violation("ANALYSIS_FAILED", "The normalized query does not parse back as one statement.")
            )
        # ...and sqlglot must read it back as the tree that was analyzed (roundtrip.py).
        round_trip = check_round_trip(normalized, final_root, dialect)
        if round_trip:
            # Mostly a function or syntax of another SQL dialect that sqlglot translates (datediff or
            # date_add with a unit on PostgreSQL): the model needs the engine's own spelling.
            hint = (
                f"What runs is sqlmode's rendering of the query for {self.traits.display_name}, and it "
                "reads differently from what was written. A function or syntax from another SQL "
                f"dialect is the usual cause: write it with {self.traits.display_name}'s own. "
                f"{self.engine.dialect_notes} Unusual comments, quoting or escapes cause it too."
            )
            raise Refusal(*(v.model_copy(update={"hint": hint}) for v in round_trip))
        a.normalized_code = normalized
        if limited is not None:
            a.row_limit = limited.row_limit
            a.limit_source = limited.source

    def _checked(
        self,
        a: Analysis,
        code: str,
        root: exp.Expr,
        snapshot: SchemaSnapshot,
        inventory: _classify.Inventory,
        traits: EngineTraits | None = None,
    ) -> RuleContext:
        """Resolve ``root`` (with ``traits``' binding rules, else the engine's) and add the rules'
        violations to ``a``."""
        ctx = RuleContext.build(code, root, snapshot, self.rules, inventory, traits)
        _extend(a, [self._with_notes(v) if _wants_notes(v) else v for v in run_rules(ctx)])
        a.violations[:] = without_pivot_listing(a.violations)
        return ctx

    def _read_columns(
        self, snapshot: SchemaSnapshot, reads: Mapping[tuple[str, str], object]
    ) -> TableColumns:
        """A base table's columns as names to write, each with whether the query reads it, and
        whether any are blocked."""
        rules = self.rules
        plain = _plain_name(self.traits)

        def columns_of(table: exp.Table) -> tuple[list[TableColumn], bool] | None:
            key = snapshot.key_of(table.name, table.text("db"))
            info = snapshot.table(key)
            if info is None:
                return None
            blocked = any(rules.column_blocked(snapshot, key, c.name.lower()) for c in info.columns)
            return [
                TableColumn(
                    exp.to_identifier(c.name, quoted=not plain(c.name)),
                    (key, c.name.lower()) in reads,
                    c.type,
                )
                for c in info.columns
            ], blocked

        return columns_of

    def _with_notes(self, v: Violation) -> Violation:
        """``v`` with the engine's dialect notes after its hint: a refusal that is mostly another SQL
        dialect's spelling (an unknown function, a construct without a rendering, syntax the analyzer
        cannot read) needs this engine's."""
        return v.model_copy(update={"hint": f"{v.hint} {self.engine.dialect_notes}"})

    def _other_dialect(self, code: str, violations: list[Violation]) -> list[Violation]:
        """``violations`` with a syntax error's hint replaced by what to write instead, when the text
        has another SQL dialect's syntax models often use (backticks, ``TOP n``, ``LIMIT a, b``)."""
        if not any(v.code == "PARSE_ERROR" for v in violations):
            return violations
        messages = [v.message for v in violations if v.code == "PARSE_ERROR"]
        hint = syntax_hint(code, self.traits.sqlglot_dialect, messages, self._engine_reads)
        if hint is None:
            return violations
        return [
            self._with_notes(v.model_copy(update={"hint": hint})) if v.code == "PARSE_ERROR" else v
            for v in violations
        ]

    def _engine_reads(self, text: str) -> bool:
        """Whether the engine's own parser reads ``text`` (cached by text, like every engine view)."""
        try:
            _parse.engine_view(text, self.engine)  # type: ignore[arg-type]
        except Refusal:
            return False
        return True

    def _render(self, root: exp.Expr, code: str) -> str:
        """The normalized code; a crash of sqlglot's generator is a refusal, not a failure.

        sqlglot's generator breaks (TypeError, AttributeError...) on a few malformed trees its
        parser let through, such as DuckDB's ``array_agg( ORDER BY id)`` with no argument. What
        runs must be rendered, so the query is refused with a way forward; the text goes to the
        debug log (a warning per mistyped query would flood an operator's log).
        """
        try:
            return render(root, self.traits.sqlglot_dialect)
        except UnsupportedError:
            raise
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as e:
            _log.debug("sqlglot cannot render %r", code[:2000], exc_info=True)
            name = self.traits.display_name
            raise Refusal(
                violation(
                    "ANALYSIS_FAILED",
                    f"The query cannot be rendered safely for {name}: sqlglot's renderer breaks on "
                    f"one of its constructs ({type(e).__name__}).",
                    "Check each call for a missing argument (array_agg(x ORDER BY y), not "
                    "array_agg(ORDER BY y)), or write the unusual part another common way.",
                )
            ) from None

    def _unreadable(self, code: str, refusal: Refusal) -> Refusal:
        """sqlglot's refusal to parse ``code``, saying so when the engine's own parser reads it.

        The model then knows its SQL is valid for the database and that another spelling of the
        same query will do, instead of hunting for a syntax error that is not there.
        """
        (first, *rest) = refusal.violations
        if first.code != "PARSE_ERROR" or rest:
            return refusal
        foreign = self._other_dialect(code, [first])
        if foreign[0] is not first:
            return Refusal(*foreign)
        try:
            view = _parse.engine_view(code, self.engine)  # type: ignore[arg-type]
        except Refusal as engine:
            # The engine's parser refuses it too: a syntax error indeed. Where sqlglot could not
            # say where (its parser broke instead), the engine's words say it.
            if first.message == _parse.UNPLACED_SYNTAX_ERROR and engine.violations:
                return Refusal(violation("PARSE_ERROR", engine.violations[0].message, first.hint))
            return refusal
        if len(view.types) != 1:
            return refusal
        name = self.traits.display_name
        return Refusal(
            self._with_notes(
                violation(
                    "PARSE_ERROR",
                    f"{name} accepts this syntax, but sqlmode's analyzer cannot read it "
                    f"({first.message}); it approves only what it reads in full.",
                    "Write the same query another common way: put the unusual part in a subquery or "
                    "CTE and order or limit it from an outer SELECT; use standard spellings of "
                    "functions and clauses.",
                )
            )
        )


# After these, the tree is not a query worth resolving.
# sqlglot's words for a construct it cannot render: "... for expression 'ToChar' when targeting ...",
# or "Unsupported TRY function".
_UNRENDERED = re.compile(r"expression '(\w+)'")
_UNSUPPORTED_CALL = re.compile(r"Unsupported (\w+) function")


def _unrendered_hint(message: str, missing: Mapping[str, str]) -> str | None:
    """The engine's own spelling for a function sqlglot could not render in its dialect (to_char on
    DuckDB: strftime), from the engine's missing-function hints; else None."""
    call = _UNSUPPORTED_CALL.search(message)
    if call is not None and call.group(1).lower() in missing:
        return missing[call.group(1).lower()]
    found = _UNRENDERED.search(message)
    node = getattr(exp, found.group(1), None) if found else None
    if not (isinstance(node, type) and issubclass(node, exp.Func)):
        return None
    return next((missing[n.lower()] for n in node.sql_names() if n.lower() in missing), None)


_STOP_CODES = frozenset(
    {
        "OPAQUE_STATEMENT",
        "STATEMENT_NOT_ALLOWED",
        "PARSER_DISAGREEMENT",
        "INTROSPECTION_BLOCKED",
        "NESTED_WRITE",
    }
)


def _plain_name(traits: EngineTraits) -> Callable[[str], bool]:
    """Whether a name may be written unquoted in this engine's SQL."""
    plain = re.compile(
        r"[a-z_][a-z0-9_$]*\Z" if traits.folds_unquoted_names else r"[A-Za-z_][A-Za-z0-9_$]*\Z"
    )
    reserved = traits.reserved_words
    return lambda name: bool(plain.match(name)) and name.lower() not in reserved


def _qualify_other_schemas(tables: list[exp.Table], snapshot: SchemaSnapshot, default_schema: str) -> None:
    """Name the schema of each bare table reference that resolves outside ``default_schema``.

    The analyzer resolved ``orders`` to ``sales.orders`` (the one table of that name in the exposed
    schemas); an engine that resolves a bare name in its default schema only must be told so. The
    tree is changed before it is rendered, so the round trip compares like with like.
    """
    for table in tables:
        if table.args.get("db") is not None or not isinstance(table.this, exp.Identifier):
            continue
        info = snapshot.table(table.name)
        if info is None or not info.schema or info.schema.lower() == default_schema.lower():
            continue
        table.set("db", exp.to_identifier(info.schema, quoted=True))


def _wants_notes(v: Violation) -> bool:
    """A refusal that is mostly another SQL dialect's spelling, whose hint ends with the engine's own."""
    return v.code == "FUNCTION_NOT_ALLOWED" or (
        v.code == "UNKNOWN_COLUMN" and v.hint.startswith(DATE_PART_HINT)
    )


def _extend(a: Analysis, found: list[Violation]) -> None:
    seen = {(v.code, v.message) for v in a.violations}
    for v in found:
        if (v.code, v.message) not in seen:
            a.violations.append(v)
            seen.add((v.code, v.message))
