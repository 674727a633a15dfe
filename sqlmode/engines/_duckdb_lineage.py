"""Which bound columns a DuckDB bound plan actually uses, by following them through its operators.

The binder binds every column a ``SELECT *`` names, also in a CTE or subquery whose outer query
keeps only two of them (``WITH c AS (SELECT * FROM customers) SELECT id, name FROM c``). Those
columns are carried and dropped: no value of them reaches the result, a filter, a join, a group,
an order or a computed expression. This module follows every output position of every operator
back to the stored columns it carries (its lineage) and counts a stored column as read when its
lineage reaches the result or any expression other than a bare pass-through reference.

Plans are positional: a ``BOUND_REF`` names a position of the child's output (of the left or right
child in a join condition). Lambda bodies reference their own parameters and captures; captures
are also passed as the function's trailing arguments, which are walked. A call's bind data
(``function_data``) holds expressions over the call's own arguments (``list_sort``'s sort key,
``list_aggregate``'s aggregate), which are not references to the input and are not followed.
Everything that is not understood exactly raises :class:`Unknown`, and the caller then counts
every bound column (what the binder bound, the over-approximation): the walk can only remove
columns that provably carry nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Unknown", "used_columns"]

Col = tuple[str, str, str]
Lineage = list[frozenset[Col]]
_EMPTY: frozenset[Col] = frozenset()
_ROW_ID = 2**64 - 1
_NO_COLUMN = 2**64 - 2
# Keys whose expressions are positional over something other than the operator's input.
_INTERNAL = frozenset({"lambda_expr", "function_data"})


class Unknown(Exception):
    """A shape the walk does not follow exactly."""


def used_columns(root: dict[str, Any]) -> set[Col]:
    """The stored columns whose values the plan uses (raises Unknown)."""
    walk = _Walk()
    out = walk.op(root)
    for lineage in out:
        walk.used |= lineage
    return walk.used


class _Walk:
    def __init__(self) -> None:
        self.used: set[Col] = set()
        self.ctes: dict[int, Lineage] = {}

    # -- expressions --------------------------------------------------------------------------

    def refs(self, expr: Any, child: Lineage) -> frozenset[Col]:
        """The lineage an expression reads from ``child``'s output."""
        found: set[Col] = set()
        self._refs(expr, child, found)
        return frozenset(found)

    def _refs(self, expr: Any, child: Lineage, found: set[Col]) -> None:
        if isinstance(expr, list):
            for item in expr:
                if isinstance(item, (dict, list)):  # a leaf holds no reference: no call for it
                    self._refs(item, child, found)
            return
        if not isinstance(expr, dict):
            return
        if expr.get("expression_class") == "BOUND_REF":
            index = expr.get("index")
            if not isinstance(index, int) or not 0 <= index < len(child):
                raise Unknown(f"a reference to position {index} of {len(child)}")
            found |= child[index]
            return
        if expr.get("expression_class") == "BOUND_COLUMN_REF":
            raise Unknown("an unresolved column reference")
        for key, value in expr.items():
            # A lambda body's references are the lambda's parameters and captures; a function's
            # bind data holds expressions over the function's own arguments (list_sort's sort
            # key, list_aggregate's aggregate, a lambda body again), never over the operator's
            # input: what a call reads from there is its arguments, walked as its children.
            if key not in _INTERNAL and isinstance(value, (dict, list)):
                self._refs(value, child, found)

    def use(self, expr: Any, child: Lineage) -> None:
        self.used |= self.refs(expr, child)

    # -- operators ----------------------------------------------------------------------------

    def op(self, node: dict[str, Any]) -> Lineage:
        kind = node.get("type")
        children = node.get("children") or []
        handler = getattr(self, f"_{str(kind).removeprefix('LOGICAL_').lower()}", None)
        if handler is None:
            raise Unknown(f"operator {kind}")
        return handler(node, children)

    def one(self, children: list[Any]) -> Lineage:
        if len(children) != 1:
            raise Unknown("an operator without exactly one input")
        return self.op(children[0])

    def _get(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        indexes = [e.get("index") if isinstance(e, dict) else None for e in node.get("column_indexes") or []]
        path = ((node.get("qname") or {}).get("path")) or []
        if path == ["seq_scan"]:
            data = node.get("function_data") or {}
            schema, table = str(data.get("schema") or "main").lower(), str(data.get("table") or "").lower()
            names = node.get("names") or []
            base: Lineage = []
            for i in indexes:
                if i in (_ROW_ID, _NO_COLUMN):
                    base.append(_EMPTY)
                elif isinstance(i, int) and 0 <= i < len(names):
                    base.append(frozenset({(schema, table, str(names[i]))}))
                else:
                    raise Unknown("a virtual column")
        else:
            for child in children:  # a table function's input is consumed whole
                for lineage in self.op(child):
                    self.used |= lineage
            base = [_EMPTY] * len(indexes)
        return self.project(base, node.get("projection_ids"))

    @staticmethod
    def project(lineage: Lineage, positions: Any) -> Lineage:
        if not positions:
            return lineage
        if not all(isinstance(p, int) and 0 <= p < len(lineage) for p in positions):
            raise Unknown("a projection map out of range")
        return [lineage[p] for p in positions]

    def _projection(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        out: Lineage = []
        for expr in node.get("expressions") or []:
            if isinstance(expr, dict) and expr.get("expression_class") == "BOUND_REF":
                out.append(self.refs(expr, child))  # carried: read only if used above
            else:
                lineage = self.refs(expr, child)
                self.used |= lineage  # computed: evaluated (and may fail) whether used or not
                out.append(lineage)
        return out

    def _filter(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        self.use(node.get("expressions"), child)
        return self.project(child, node.get("projection_map"))

    def _aggregate_and_group_by(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        groups = [self.refs(g, child) for g in node.get("groups") or []]
        aggregates = [self.refs(a, child) for a in node.get("expressions") or []]
        for lineage in groups + aggregates:
            self.used |= lineage
        return groups + aggregates + [_EMPTY] * len(node.get("grouping_functions") or [])

    def _window(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        extra = [self.refs(e, child) for e in node.get("expressions") or []]
        for lineage in extra:
            self.used |= lineage
        return child + extra

    _unnest = _window

    def _limit(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        self.use([node.get("limit_val"), node.get("offset_val")], child)
        return child

    def _order_by(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        self.use(node.get("orders"), child)
        return self.project(child, node.get("projections"))

    def _top_n(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        self.use(node.get("orders"), child)
        return child

    def _distinct(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        for lineage in child:  # which rows remain depends on every column
            self.used |= lineage
        self.use([node.get("distinct_targets"), node.get("order_by")], child)
        return child

    def _sample(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return self.one(children)

    def _dummy_scan(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return [_EMPTY]

    def _empty_result(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return [_EMPTY] * len(node.get("return_types") or [])

    def _chunk_get(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return [_EMPTY] * len(node.get("chunk_types") or [])

    def _delim_get(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        # Duplicate-eliminated columns of the delim join's left side, which counts all of them used.
        return [_EMPTY] * len(node.get("chunk_types") or [])

    def _expression_get(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        child = self.one(children)
        self.use(node.get("expressions"), child)
        width = len(node.get("expr_types") or [])
        rows = node.get("expressions") or []
        return [
            frozenset().union(*(self.refs(r[i], child) for r in rows if len(r) > i)) for i in range(width)
        ]

    def _materialized_cte(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        if len(children) != 2:
            raise Unknown("a CTE without definition and query")
        index = node.get("table_index")
        self.ctes[int(index) if isinstance(index, int) else -1] = self.op(children[0])
        return self.op(children[1])

    def _cte_ref(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        index = node.get("cte_index")
        lineage = self.ctes.get(index) if isinstance(index, int) else None
        if lineage is None or len(lineage) != len(node.get("chunk_types") or []):
            raise Unknown("a reference to a CTE not seen before")
        return lineage

    def _recursive_cte(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        width = node.get("column_count")
        index = node.get("table_index")
        if len(children) != 2 or not isinstance(width, int) or not isinstance(index, int):
            raise Unknown("a recursive CTE")
        self.ctes[index] = [_EMPTY] * width  # its own references carry what is counted here
        for child in children:
            for lineage in self.op(child):
                self.used |= lineage
        return [_EMPTY] * width

    def _setop(self, node: dict[str, Any], children: list[Any], *, distinct: bool) -> Lineage:
        if len(children) < 2:
            raise Unknown("a set operation without two inputs")
        inputs = [self.op(child) for child in children]
        if len({len(lineage) for lineage in inputs}) != 1:
            raise Unknown("a set operation over inputs of different widths")
        if distinct:
            for lineage in inputs:
                for one in lineage:
                    self.used |= one
        return [frozenset().union(*column) for column in zip(*inputs, strict=True)]

    def _union(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return self._setop(node, children, distinct=not node.get("setop_all"))

    def _except(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        return self._setop(node, children, distinct=True)

    _intersect = _except

    def _cross_product(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        if len(children) != 2:
            raise Unknown("a product without two inputs")
        return self.op(children[0]) + self.op(children[1])

    _positional_join = _cross_product

    def _comparison_join(self, node: dict[str, Any], children: list[Any]) -> Lineage:
        if len(children) != 2:
            raise Unknown("a join without two inputs")
        left, right = self.op(children[0]), self.op(children[1])
        marks: set[Col] = set()
        for cond in node.get("conditions") or []:
            if not isinstance(cond, dict):
                raise Unknown("a join condition")
            marks |= self.refs(cond.get("left"), left) | self.refs(cond.get("right"), right)
        if "condition" in node:  # LOGICAL_ANY_JOIN: one expression over both sides
            marks |= self.refs(node.get("condition"), left + right)
        if node.get("duplicate_eliminated_columns"):  # a delim join: its left side feeds DELIM_GET
            for lineage in left:
                marks |= lineage
        self.used |= marks
        kind = node.get("join_type")
        lp = self.project(left, node.get("left_projection_map"))
        rp = self.project(right, node.get("right_projection_map"))
        if kind in ("INNER", "LEFT", "RIGHT", "OUTER", "FULL", "SINGLE"):
            return lp + rp
        if kind in ("SEMI", "ANTI"):
            return lp
        if kind in ("RIGHT_SEMI", "RIGHT_ANTI"):
            return rp
        if kind == "MARK":
            return [*lp, frozenset(marks)]
        raise Unknown(f"join type {kind}")

    _any_join = _comparison_join
    _asof_join = _comparison_join
    _delim_join = _comparison_join
