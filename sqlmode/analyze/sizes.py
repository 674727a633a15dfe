"""Bounds on the values an expression builds, before any engine sees it.

Engines fold constant expressions while *planning*, where no statement timeout or
interrupt applies: ``repeat(repeat('x', 10000), 10000)`` builds 100 MB during DuckDB's
planning, and a few more levels exhaust memory. Per-call bounds (functions.py) cannot see
this, since each call alone is small. So every expression gets an upper bound on what it
builds, in characters or list elements, computed bottom-up through nesting: builders
multiply (repeat, list_resize, array_fill, a lambda or comprehension over a list),
everything else adds up its arguments. A column or subquery counts as ``COLUMN_WIDTH``
(what the value could be is data, and the execution limits cover it; a builder on top of
it is still bounded by the product).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from .functions import _number, generated_rows
from .parse import generate

# Upper bound, in characters or list elements, of any one value a query builds.
MAX_VALUE_SIZE = 10_000_000
COLUMN_WIDTH = 100
_WIDTH = re.compile(r"\d+")
# The longest text a computed number or a timestamp renders to (e.g. 0.3333333333333333).
_NUMBER_TEXT = 32
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Pow, exp.IntDiv)


@dataclass(frozen=True, slots=True)
class Size:
    """``count`` top-level elements (1 for a scalar) and ``total`` size in all."""

    count: float
    total: float


_SCALAR_UNKNOWN = Size(1, COLUMN_WIDTH)


class Sizes:
    """Memoized size bounds for the nodes of one tree."""

    def __init__(self) -> None:
        self._memo: dict[int, Size] = {}
        self._params: dict[str, Size] = {}  # lambda / comprehension variables in scope
        self.unbounded: str | None = None  # why a builder has no literal bound

    def of(self, node: exp.Expr | None) -> Size:
        if node is None:
            return Size(0, 0)
        key = id(node)
        found = self._memo.get(key)
        if found is not None:
            return found
        size = self._compute(node)
        if not self._params:  # sizes under a bound variable depend on it: not memoized
            self._memo[key] = size
        return size

    def _args(self, node: exp.Expr) -> list[exp.Expr]:
        return [a for a in node.iter_expressions() if not isinstance(a, (exp.DataType, exp.Var))]

    def _sum(self, nodes: list[exp.Expr]) -> Size:
        # A list argument may be rendered as text: brackets and ", " between elements.
        total = 0.0
        for a in nodes:
            size = self.of(a)
            total += size.total + (3 * size.count + 2 if size.count > 1 else 0)
        return Size(1, max(total, 1))

    def _compute(self, node: exp.Expr) -> Size:
        if isinstance(node, exp.Literal):
            return Size(1, max(len(str(node.this)), 1))
        if isinstance(node, (exp.Null, exp.Boolean, exp.Star)):
            return Size(1, 1)
        if isinstance(node, (exp.Column, exp.Identifier)):
            name = node.name.lower()
            if name in self._params and not (isinstance(node, exp.Column) and node.table):
                return self._params[name]
            return _SCALAR_UNKNOWN
        if isinstance(node, (exp.Subquery, exp.Select, exp.SetOperation, exp.Exists)):
            return _SCALAR_UNKNOWN  # its own expressions are checked where they stand
        if isinstance(node, (exp.Paren, exp.Alias)):
            return self.of(node.this)
        if isinstance(node, (exp.Cast, exp.TryCast)):
            inner = self.of(node.this)
            if inner.count > 1:  # a list cast to text gains brackets and separators
                return Size(1, inner.total + 3 * inner.count + 2)
            return Size(1, max(inner.total, _NUMBER_TEXT if _is_text(node) else inner.total))
        if isinstance(node, exp.Repeat):
            return self._times(node.this, node.args.get("times"), "repeat()")
        if isinstance(node, exp.Pad):
            length = _number(node.expression)
            if length is None:
                self.unbounded = self.unbounded or "lpad/rpad need a literal length"
                return _SCALAR_UNKNOWN
            return Size(1, max(length, self.of(node.this).total, 1))
        if isinstance(node, (exp.Replace, exp.RegexpReplace)):
            # Every character may be replaced by the whole replacement.
            text = self.of(node.this).total
            return Size(1, text * max(self.of(node.args.get("replacement")).total, 1) + text)
        if isinstance(node, exp.Format) or _named(node) in ("printf", "format"):
            return self._format(node)
        if isinstance(node, exp.Comprehension):
            source = self.of(node.args.get("iterator"))
            var = node.args.get("expression")
            body = self._bound(var.name if var is not None else "", source, node.this)
            return Size(source.count, source.count * max(body.total, 1))
        if isinstance(node, exp.Lambda):
            return self._sum([node.this]) if node.this is not None else Size(1, 1)
        lam = next((a for a in node.iter_expressions() if isinstance(a, exp.Lambda)), None)
        if lam is not None:
            return self._lambda_call(node, lam)
        name = _named(node)
        if isinstance(node, (exp.GenerateSeries, exp.ExplodingGenerateSeries)) or name in (
            "generate_series",
            "range",
        ):
            return self._series(node)
        if name in ("list_resize", "array_resize"):
            args = self._args(node)
            n = _number(args[1]) if len(args) > 1 else None
            if n is None:
                self.unbounded = self.unbounded or f"{name}() needs a literal length"
                return _SCALAR_UNKNOWN
            fill = self.of(args[2]).total if len(args) > 2 else 1
            return Size(n, n * max(fill, 1) + self.of(args[0]).total)
        if name in _WIDTH_ARGS:
            # bar(x, lo, hi, width), to_base(n, radix, min_length): text as wide as an argument;
            # equi_width_bins(lo, hi, count, nice): a list of that many bins.
            at, default, what = _WIDTH_ARGS[name]
            args = self._args(node)
            n = _number(args[at]) if len(args) > at else default
            if n is None:
                self.unbounded = self.unbounded or f"{name}() needs a literal {what}"
                return _SCALAR_UNKNOWN
            n = max(n, 1)
            if what == "count":  # a list of n numbers
                return Size(n, n * _NUMBER_TEXT)
            return Size(1, max(n, _NUMBER_TEXT) * 3)  # text n wide (bar's block characters: 3 bytes)
        if name == "array_fill":
            args = self._args(node)
            dims = args[1] if len(args) > 1 else None
            values = [_number(d) for d in dims.expressions] if isinstance(dims, exp.Array) else [None]
            if not values or any(v is None for v in values):
                self.unbounded = self.unbounded or "array_fill() needs literal dimensions"
                return _SCALAR_UNKNOWN
            n = 1.0
            for v in values:
                n *= max(v or 0, 0)
            return Size(n, n * max(self.of(args[0]).total, 1))
        if isinstance(node, (exp.Array, exp.Tuple)) or name in ("list_value", "array"):
            parts = self._args(node)
            return Size(len(parts), max(sum(self.of(a).total for a in parts), 1))
        if isinstance(node, exp.Flatten):
            inner = self.of(node.this)
            return Size(inner.total, inner.total)
        if isinstance(node, (exp.ArrayConcat, exp.ArrayAppend)):
            parts = self._args(node)
            return Size(sum(self.of(a).count for a in parts), max(sum(self.of(a).total for a in parts), 1))
        size = self._sum(self._args(node))
        if isinstance(node, _ARITHMETIC):
            return Size(1, max(size.total, _NUMBER_TEXT))
        return size

    def _times(self, this: exp.Expr | None, times: exp.Expr | None, what: str) -> Size:
        n = _number(times)
        if n is None:
            self.unbounded = self.unbounded or f"{what} needs a literal count"
            return _SCALAR_UNKNOWN
        n = max(n, 0)
        inner = self.of(this)
        return Size(inner.count * n if inner.count > 1 else 1, max(inner.total, 1) * n)

    def _series(self, node: exp.Expr) -> Size:
        if isinstance(node, exp.Anonymous):
            args = node.expressions
            node = exp.GenerateSeries(
                start=args[0] if len(args) > 1 else exp.Literal.number(0),
                end=args[1] if len(args) > 1 else (args[0] if args else None),
                step=args[2] if len(args) > 2 else None,
            )
        rows = generated_rows(node)  # type: ignore[arg-type]
        if rows is None:
            return _SCALAR_UNKNOWN  # functions.py refuses generators without literal bounds
        # Each element as text: as wide as the widest bound (dates and timestamps: 30).
        bounds = [node.args.get(k) for k in ("start", "end")]
        width = max((len(generate(b)) + 1 for b in bounds if b is not None), default=1)
        width = width if all(_number(b) is not None for b in bounds if b is not None) else 30
        return Size(rows, max(rows * width, 1))

    def _format(self, node: exp.Expr) -> Size:
        args = self._args(node)
        fmt = args[0] if args else None
        rest = self._sum(args[1:]).total if len(args) > 1 else 0
        if not (isinstance(fmt, exp.Literal) and fmt.is_string):
            self.unbounded = self.unbounded or "format()/printf() need a literal format string"
            return _SCALAR_UNKNOWN
        text = str(fmt.this)
        widths: float = sum(int(w) for w in _WIDTH.findall(text))
        if "*" in text:  # widths taken from the arguments
            for a in args[1:]:
                widths += max(_number(a) or 0, 0)
        return Size(1, len(text) + widths + rest)

    def _lambda_call(self, node: exp.Expr, lam: exp.Lambda) -> Size:
        """list_transform(l, x -> body) and friends: the body once per element of l."""
        others = [a for a in node.iter_expressions() if a is not lam]
        source = self.of(others[0]) if others else Size(1, COLUMN_WIDTH)
        params = [p.name for p in lam.expressions]
        body = self._bound(params[0] if params else "", source, lam.this)
        per = max(body.total, 1)
        if per <= max(source.total / max(source.count, 1), 1):  # filters, reductions
            return Size(source.count, max(source.total, 1))
        return Size(source.count, source.count * per)

    def _bound(self, name: str, source: Size, body: exp.Expr | None) -> Size:
        element = Size(1, max(source.total / max(source.count, 1), 1))
        saved = dict(self._params)
        self._params[name.lower()] = element
        try:
            return self.of(body)
        finally:
            self._params = saved


def _is_text(node: exp.Expr) -> bool:
    to = node.args.get("to")
    return isinstance(to, exp.DataType) and to.is_type(*exp.DataType.TEXT_TYPES)


def _named(node: exp.Expr) -> str:
    return str(node.name).lower() if isinstance(node, exp.Anonymous) else ""


_BUILDERS: tuple[type, ...] = (
    exp.Repeat,
    exp.Pad,
    exp.Replace,
    exp.RegexpReplace,
    exp.Format,
    exp.GenerateSeries,
    exp.ExplodingGenerateSeries,
    exp.Flatten,
)
# name -> (the argument that sets the size, its default when absent, what it sets: "width" of a
# text, or "count" of a list of numbers).
_WIDTH_ARGS: dict[str, tuple[int, float | None, str]] = {
    "bar": (3, 80, "width"),
    "to_base": (2, 0, "width"),
    "equi_width_bins": (2, None, "count"),
}
_BUILDER_NAMES = frozenset(
    {
        "printf",
        "format",
        "list_resize",
        "array_resize",
        "array_fill",
        "generate_series",
        "range",
        *_WIDTH_ARGS,
    }
)


def _builds(node: exp.Func) -> bool:
    """Whether a call can multiply sizes (without one, a value is no larger than the query)."""
    if isinstance(node, _BUILDERS) or _named(node) in _BUILDER_NAMES:
        return True
    return any(isinstance(v, (exp.Lambda, exp.Comprehension)) for v in node.iter_expressions())


def size_problem(funcs: list[exp.Func]) -> str | None:
    """Why some expression would build a value over MAX_VALUE_SIZE, or None."""
    if not any(_builds(f) for f in funcs):
        return None
    sizes = Sizes()
    largest = 0.0
    for node in funcs:  # memoized: nested calls are computed once
        largest = max(largest, sizes.of(node).total)
    if largest > MAX_VALUE_SIZE:
        return (
            f"an expression would build a value of about {int(largest):,} characters or "
            f"list elements; at most {MAX_VALUE_SIZE:,}"
        )
    return sizes.unbounded
