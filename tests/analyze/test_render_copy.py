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


# -- copy_tree: render's own copy, checked against sqlglot's deep copy on every golden case ------

from pathlib import Path  # noqa: E402

from sqlglot import exp  # noqa: E402
from sqlglot.errors import ErrorLevel  # noqa: E402

from sqlmode.analyze.parse import copy_tree  # noqa: E402
from tests.fixtures.cases import FIXTURES, load_cases  # noqa: E402


def _trees(dialect: str) -> list[exp.Expr]:
    out = [sqlglot.parse_one(ORDERED_AGGREGATE, read=dialect)]
    for folder in ("legit", "attacks"):
        for case in load_cases(Path(FIXTURES) / folder / f"{dialect}.sql"):
            try:
                out += [t for t in sqlglot_dialect(dialect).parse(case.sql) if t is not None]
            except Exception:  # cases the parser refuses are not the copy's business
                continue
    return out


def _links_ok(tree: exp.Expr) -> None:
    for node in tree.walk():
        for key, value in node.args.items():
            children = value if type(value) is list else [value]
            for i, child in enumerate(children):
                if isinstance(child, exp.Expr):
                    assert child.parent is node and child.arg_key == key
                    assert child.index == (i if type(value) is list else None)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_copy_tree_is_an_independent_equal_tree_that_renders_as_sqlglots_copy(dialect: str) -> None:
    trees = _trees(dialect)
    assert len(trees) > 100
    gen = sqlglot_dialect(dialect)
    for tree in trees:
        copied = copy_tree(tree)
        assert copied == tree
        _links_ok(copied)
        originals = list(tree.walk())
        copies = list(copied.walk())
        assert len(originals) == len(copies)
        for a, b in zip(originals, copies, strict=True):
            assert a is not b and type(a) is type(b)
            assert a.meta == b.meta and (a._meta is None or a._meta is not b._meta)
            assert a.comments == b.comments and (a.comments is None or a.comments is not b.comments)
            for key, value in a.args.items():
                if type(value) is list:
                    assert b.args[key] is not value
        try:
            expected = gen.generate(tree, copy=True, comments=False, unsupported_level=ErrorLevel.RAISE)
        except Exception:
            continue
        before = tree.copy()
        assert render(tree, dialect) == expected
        assert tree == before  # rendering the copy left the analyzed tree alone
