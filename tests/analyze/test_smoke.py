"""The analyzer's basic contract: accept a typical report, refuse the obvious."""

from sqlmode.analyze import VIOLATION_CODES
from sqlmode.models import Action, Analysis, RiskLevel


def codes(analysis: Analysis) -> set[str]:
    return {v.code for v in analysis.violations}


def test_typical_report_is_accepted_resolved_and_limited(analyze):
    a = analyze(
        "SELECT c.region, count(*) AS n, sum(o.total) AS revenue FROM customers c "
        "JOIN orders o ON o.customer_id = c.id WHERE o.status = 'shipped' GROUP BY c.region ORDER BY n DESC"
    )
    assert a.violations == []
    assert a.statement_type == "SELECT" and a.action == Action.READ and a.risk_level == RiskLevel.LOW
    assert a.tables == ["customers", "orders"]
    assert a.columns == [
        "customers.id",
        "customers.region",
        "orders.customer_id",
        "orders.status",
        "orders.total",
    ]
    assert a.functions == ["count", "sum"]
    assert a.normalized_code.endswith("LIMIT 1001") and a.row_limit == 1000
    assert "customers" in a.explanation and "orders.status" in a.explanation


def test_blocked_column_is_named(analyze):
    a = analyze("SELECT ssn FROM customers")
    assert codes(a) == {"COLUMN_BLOCKED"}
    assert "customers.ssn" in a.violations[0].message
    assert a.normalized_code == ""


def test_star_over_a_blocked_column_hints_the_visible_columns(analyze):
    """The LLM can fix a star in one try: the hint lists what it may name, never the blocked column."""
    for sql in (
        "SELECT * FROM customers",
        "SELECT c.* FROM customers c JOIN orders o ON o.customer_id = c.id",
    ):
        a = analyze(sql)
        assert codes(a) == {"COLUMN_BLOCKED"}
        (v,) = a.violations
        assert "ssn" not in v.message and "ssn" not in v.hint
        listed = v.hint.split("the visible ones: ", 1)[1].rstrip(".").split(", ")
        assert listed and "id" in listed and "name" in listed
        fixed = analyze(f"SELECT {', '.join(listed)} FROM customers")
        assert fixed.violations == [] and "customers.ssn" not in fixed.columns


def test_an_unnamed_blocked_read_gets_a_hint_for_the_construct_that_reached_it(analyze):
    """A star, a whole row, a name an alias list gives a column, a PIVOT: each is told what to write."""
    for sql, lead in (
        ("SELECT * FROM customers", "Name the columns you need instead of the star;"),
        ("SELECT to_json(c) FROM customers c", "Name the columns you need instead of a whole-row value;"),
        ("SELECT d FROM customers AS t(a, b, c, d)", "Name the columns you need by their own names;"),
    ):
        (v,) = analyze(sql).violations
        assert v.code == "COLUMN_BLOCKED" and v.hint.startswith(lead), (sql, v.hint)
        assert "ssn" not in v.message and "ssn" not in v.hint


def test_commit_then_drop_is_refused(analyze):
    assert "MULTIPLE_STATEMENTS" in codes(analyze("SELECT 1; COMMIT; DROP TABLE orders"))


def test_every_code_has_summary_and_hint():
    for code, (summary, hint) in VIOLATION_CODES.items():
        assert code.isupper() and summary and hint
