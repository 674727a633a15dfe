"""Why render() copies the tree (the deepcopy on every validate): sqlglot's generator rewrites it.

The round trip (roundtrip.py) compares the normalized SQL's parse with the analyzed tree; were the
tree rewritten by rendering, the comparison would be against what the generator made of it, not
what was analyzed. If the first test starts failing after a sqlglot upgrade (the generator no
longer changes its input), the copy may be dropped for that version: the second keeps it honest.
"""

from __future__ import annotations

import pytest
import sqlglot

from sqlmode.analyze.parse import sqlglot_dialect
from sqlmode.analyze.rewrite import render

ORDERED_AGGREGATE = "SELECT customer_id, string_agg(status, ', ' ORDER BY created_at) FROM orders GROUP BY 1"


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_the_generator_rewrites_the_tree_it_renders_in_place(dialect: str) -> None:
    tree = sqlglot.parse_one(ORDERED_AGGREGATE, read=dialect)
    analyzed = tree.copy()
    sqlglot_dialect(dialect).generate(tree, copy=False)
    assert tree != analyzed


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_render_leaves_the_analyzed_tree_as_it_was(dialect: str) -> None:
    tree = sqlglot.parse_one(ORDERED_AGGREGATE, read=dialect)
    analyzed = tree.copy()
    text = render(tree, dialect)
    assert tree == analyzed
    assert sqlglot.parse_one(text, read=dialect) == analyzed  # and the text means the same query
