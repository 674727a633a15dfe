"""Query corpora and synthetic schemas for the validation benchmarks.

- ``TYPICAL``: analyst queries over the sample warehouse, each valid in both dialects; the first
  is the "typical query" of the analysis target (one join, a filter, a group, an order).
- ``TPCH``: TPC-H queries that join six tables (Q5, Q7, Q9) or more (Q2 with its correlated
  subquery, Q8 with eight), over ``TPCH_DDL``.
- ``synthetic_tables(n)`` / ``synthetic_ddl(n)``: a schema of ``n`` tables for the growth curve.
- ``grown_query(k)``: the typical query with ``k`` computed columns and ``k`` predicates.
"""

from __future__ import annotations

from sqlmode.schema import ColumnInfo, ForeignKey, TableInfo

TYPICAL_NAME = "typical"

TYPICAL: list[tuple[str, str]] = [
    (
        TYPICAL_NAME,
        """SELECT c.region, count(*) AS orders, sum(o.total) AS revenue
FROM orders AS o JOIN customers AS c ON c.id = o.customer_id
WHERE o.status = 'completed'
GROUP BY c.region
ORDER BY revenue DESC""",
    ),
    (
        "filter_limit",
        """SELECT id, customer_id, status, total FROM orders
WHERE total > 500 ORDER BY total DESC LIMIT 50""",
    ),
    (
        "monthly_category",
        """SELECT date_trunc('month', o.created_at) AS month, p.category,
       sum(oi.quantity * oi.unit_price) AS sales
FROM orders AS o
JOIN order_items AS oi ON oi.order_id = o.id
JOIN products AS p ON p.id = oi.product_id
WHERE o.created_at >= TIMESTAMP '2026-01-01'
GROUP BY 1, 2
ORDER BY 1, 3 DESC""",
    ),
    (
        "window_top_n",
        """SELECT * FROM (
  SELECT c.region, c.name, sum(o.total) AS spend,
         row_number() OVER (PARTITION BY c.region ORDER BY sum(o.total) DESC) AS rn
  FROM customers AS c JOIN orders AS o ON o.customer_id = c.id
  GROUP BY c.region, c.name
) AS ranked
WHERE rn <= 5 ORDER BY region, rn""",
    ),
    (
        "cte_having",
        """WITH per_customer AS (
  SELECT customer_id, count(*) AS n, avg(total) AS avg_total
  FROM orders
  WHERE status <> 'cancelled'
  GROUP BY customer_id
  HAVING count(*) >= 10
)
SELECT c.segment, count(*) AS loyal_customers, round(avg(p.avg_total), 2) AS avg_order
FROM per_customer AS p JOIN customers AS c ON c.id = p.customer_id
GROUP BY c.segment ORDER BY 2 DESC""",
    ),
    (
        "case_tickets",
        """SELECT priority,
       count(*) AS tickets,
       sum(CASE WHEN closed_at IS NULL THEN 1 ELSE 0 END) AS still_open,
       avg(EXTRACT(EPOCH FROM closed_at - opened_at) / 3600) AS avg_hours_to_close
FROM support_tickets
WHERE opened_at >= TIMESTAMP '2026-06-01'
GROUP BY priority ORDER BY tickets DESC""",
    ),
    (
        "union_channels",
        """SELECT 'contact' AS kind, channel AS label, count(*) AS n FROM contacts GROUP BY channel
UNION ALL
SELECT 'ticket', status, count(*) FROM support_tickets GROUP BY status
ORDER BY kind, n DESC""",
    ),
    (
        "not_contacted",
        """SELECT c.id, c.name, c.region, max(ct.contacted_at) AS last_contact
FROM customers AS c LEFT JOIN contacts AS ct ON ct.customer_id = c.id
GROUP BY c.id, c.name, c.region
HAVING max(ct.contacted_at) IS NULL OR max(ct.contacted_at) < TIMESTAMP '2026-10-01'
ORDER BY last_contact NULLS FIRST LIMIT 100""",
    ),
]

TPCH_DDL = [
    "CREATE TABLE region (r_regionkey INTEGER PRIMARY KEY, r_name VARCHAR, r_comment VARCHAR)",
    "CREATE TABLE nation (n_nationkey INTEGER PRIMARY KEY, n_name VARCHAR, "
    "n_regionkey INTEGER REFERENCES region (r_regionkey), n_comment VARCHAR)",
    "CREATE TABLE part (p_partkey INTEGER PRIMARY KEY, p_name VARCHAR, p_mfgr VARCHAR, p_brand VARCHAR, "
    "p_type VARCHAR, p_size INTEGER, p_container VARCHAR, p_retailprice DECIMAL(15,2), p_comment VARCHAR)",
    "CREATE TABLE supplier (s_suppkey INTEGER PRIMARY KEY, s_name VARCHAR, s_address VARCHAR, "
    "s_nationkey INTEGER REFERENCES nation (n_nationkey), s_phone VARCHAR, s_acctbal DECIMAL(15,2), "
    "s_comment VARCHAR)",
    "CREATE TABLE partsupp (ps_partkey INTEGER REFERENCES part (p_partkey), "
    "ps_suppkey INTEGER REFERENCES supplier (s_suppkey), ps_availqty INTEGER, ps_supplycost DECIMAL(15,2), "
    "ps_comment VARCHAR, PRIMARY KEY (ps_partkey, ps_suppkey))",
    "CREATE TABLE customer (c_custkey INTEGER PRIMARY KEY, c_name VARCHAR, c_address VARCHAR, "
    "c_nationkey INTEGER REFERENCES nation (n_nationkey), c_phone VARCHAR, c_acctbal DECIMAL(15,2), "
    "c_mktsegment VARCHAR, c_comment VARCHAR)",
    "CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER REFERENCES customer (c_custkey), "
    "o_orderstatus VARCHAR, o_totalprice DECIMAL(15,2), o_orderdate DATE, o_orderpriority VARCHAR, "
    "o_clerk VARCHAR, o_shippriority INTEGER, o_comment VARCHAR)",
    "CREATE TABLE lineitem (l_orderkey INTEGER REFERENCES orders (o_orderkey), l_partkey INTEGER, "
    "l_suppkey INTEGER, l_linenumber INTEGER, l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), "
    "l_discount DECIMAL(15,2), l_tax DECIMAL(15,2), l_returnflag VARCHAR, l_linestatus VARCHAR, "
    "l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE, l_shipinstruct VARCHAR, l_shipmode VARCHAR, "
    "l_comment VARCHAR, PRIMARY KEY (l_orderkey, l_linenumber))",
]

TPCH: list[tuple[str, str]] = [
    (
        "q5_six_tables",
        """SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM customer, orders, lineitem, supplier, nation, region
WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
  AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
  AND r_name = 'ASIA' AND o_orderdate >= DATE '1994-01-01' AND o_orderdate < DATE '1995-01-01'
GROUP BY n_name
ORDER BY revenue DESC""",
    ),
    (
        "q7_six_tables",
        """SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue
FROM (
  SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, extract(year FROM l_shipdate) AS l_year,
         l_extendedprice * (1 - l_discount) AS volume
  FROM supplier, lineitem, orders, customer, nation n1, nation n2
  WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
    AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
    AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
    AND l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'
) AS shipping
GROUP BY supp_nation, cust_nation, l_year
ORDER BY supp_nation, cust_nation, l_year""",
    ),
    (
        "q9_six_tables",
        """SELECT nation, o_year, sum(amount) AS sum_profit
FROM (
  SELECT n_name AS nation, extract(year FROM o_orderdate) AS o_year,
         l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount
  FROM part, supplier, lineitem, partsupp, orders, nation
  WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey
    AND p_partkey = l_partkey AND o_orderkey = l_orderkey AND s_nationkey = n_nationkey
    AND p_name LIKE '%green%'
) AS profit
GROUP BY nation, o_year
ORDER BY nation, o_year DESC""",
    ),
    (
        "q2_subquery",
        """SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
FROM part, supplier, partsupp, nation, region
WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND p_size = 15 AND p_type LIKE '%BRASS'
  AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'EUROPE'
  AND ps_supplycost = (
    SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region
    WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND s_nationkey = n_nationkey
      AND n_regionkey = r_regionkey AND r_name = 'EUROPE')
ORDER BY s_acctbal DESC, n_name, s_name, p_partkey
LIMIT 100""",
    ),
    (
        "q8_eight_tables",
        """SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS mkt_share
FROM (
  SELECT extract(year FROM o_orderdate) AS o_year, l_extendedprice * (1 - l_discount) AS volume,
         n2.n_name AS nation
  FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
  WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey
    AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey
    AND r_name = 'AMERICA' AND s_nationkey = n2.n_nationkey
    AND o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31' AND p_type = 'ECONOMY ANODIZED STEEL'
) AS all_nations
GROUP BY o_year
ORDER BY o_year""",
    ),
]


def tpch_tables() -> list[TableInfo]:
    """TPC-H's eight tables as snapshot entries (types as the engines report them)."""
    import sqlglot
    from sqlglot import exp

    out = []
    for ddl in TPCH_DDL:
        tree = sqlglot.parse_one(ddl, read="duckdb")
        schema = tree.this
        name = schema.this.name
        cols, fks, pk = [], [], set()
        for e in schema.expressions:
            if isinstance(e, exp.ColumnDef):
                assert e.kind is not None, e.sql()  # every column of the TPC-H DDL has a type
                is_pk = any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in e.constraints)
                cols.append((e.name, e.kind.sql("duckdb").upper(), is_pk))
                for c in e.constraints:
                    if isinstance(c.kind, exp.Reference):
                        ref = c.kind.this
                        fks.append(
                            ForeignKey((e.name,), ref.this.name, tuple(x.name for x in ref.expressions))
                        )
            elif isinstance(e, exp.PrimaryKey):
                pk |= {x.name for x in e.expressions}
        out.append(
            TableInfo(
                name=name,
                columns=tuple(
                    ColumnInfo(n, t, nullable=not (p or n in pk), primary_key=p or n in pk)
                    for n, t, p in cols
                ),
                foreign_keys=tuple(fks),
            )
        )
    return out


SYNTH_COLUMNS = 12


def synthetic_tables(n: int) -> list[TableInfo]:
    """``n`` tables t0001..tNNNN of 12 columns, each with a foreign key to the previous table."""
    tables = []
    for i in range(1, n + 1):
        cols = [
            ColumnInfo("id", "INTEGER", nullable=False, primary_key=True),
            ColumnInfo("parent_id", "INTEGER"),
        ]
        cols += [
            ColumnInfo(f"c{j}", "VARCHAR" if j % 3 else "DECIMAL(12,2)") for j in range(SYNTH_COLUMNS - 3)
        ]
        cols.append(ColumnInfo("created_at", "TIMESTAMP"))
        fks = (ForeignKey(("parent_id",), f"t{i - 1:04d}", ("id",)),) if i > 1 else ()
        tables.append(TableInfo(name=f"t{i:04d}", columns=tuple(cols), foreign_keys=fks))
    return tables


def synthetic_ddl(n: int) -> list[str]:
    """DDL for :func:`synthetic_tables` (no foreign keys: DuckDB checks them on insert only)."""
    out = []
    for t in synthetic_tables(n):
        cols = ", ".join(f"{c.name} {c.type}" + (" PRIMARY KEY" if c.primary_key else "") for c in t.columns)
        out.append(f"CREATE TABLE {t.name} ({cols})")
    return out


def synthetic_query(n_tables: int) -> str:
    """The typical query shape (one join, filter, group, order) over two tables of the synthetic schema."""
    a, b = f"t{n_tables:04d}", f"t{n_tables - 1:04d}"
    return (
        f"SELECT b.c1, count(*) AS n, sum(a.c0) AS total\nFROM {a} AS a JOIN {b} AS b ON b.id = a.parent_id\n"
        f"WHERE a.c2 = 'x'\nGROUP BY b.c1\nORDER BY total DESC"
    )


def synthetic_six_table_query(n_tables: int) -> str:
    """A six-table chain join over the last six synthetic tables."""
    names = [f"t{n_tables - i:04d}" for i in range(6)]
    joins = "".join(
        f"\nJOIN {names[i]} AS x{i} ON x{i}.id = x{i - 1}.parent_id" for i in range(1, len(names))
    )
    return (
        f"SELECT x5.c1, count(*) AS n, sum(x0.c0) AS total\nFROM {names[0]} AS x0{joins}\n"
        f"WHERE x0.c2 = 'x' AND x3.c4 <> 'y'\nGROUP BY x5.c1\nORDER BY total DESC"
    )


def grown_query(k: int) -> str:
    """The typical query with ``k`` computed output columns and ``k`` extra predicates."""
    exprs = ",\n  ".join(
        f"sum(CASE WHEN o.total > {i * 10} THEN o.total ELSE 0 END) AS bucket_{i}" for i in range(k)
    )
    preds = "\n  OR ".join(
        f"(o.total BETWEEN {i * 10} AND {i * 10 + 5} AND c.segment <> 'seg{i}')" for i in range(k)
    )
    return (
        f"SELECT c.region,\n  {exprs}\nFROM orders AS o JOIN customers AS c ON c.id = o.customer_id\n"
        f"WHERE o.status = 'completed' AND (\n  {preds})\nGROUP BY c.region\nORDER BY c.region"
    )
