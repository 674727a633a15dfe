# ruff: noqa: E501  (probe SQL reads best on one line)
"""Red-team probes of blocked-column binding, end to end through validate -> execute.

Each probe reads a blocked value (``customers.ssn`` or the ``credentials`` table) by a route an
attacker would try: alias shadowing in every clause, correlated subqueries at several depths,
sources whose columns are unknown, comprehension and lambda variables, quoted and case-folded
names, whole-row values, set operations and recursive CTEs, engine-specific syntax. Where the
engine binds a name two ways, the analyzer must over-approximate, so every probe must be
refused; if one is not, it is also executed and any blocked value in its rows is reported.

Oracle shapes (a blocked value compared with a literal, inside CASE / casts / regexes / errors)
must get the same verdict and the same messages for every literal: validation alone must not
answer questions about the data. Refusal messages never name a blocked item the query did not.

PostgreSQL runs connected as the superuser (the usual ``database.url``) and as the reader role.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings
from sqlmode.models import ValidationResult
from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes

SSN = re.compile(r"\b\d{9}\b")

# -- probes valid on both engines -------------------------------------------------------------

COMMON: dict[str, str] = {
    # alias shadowing, per clause
    "shadow_select_alias": "SELECT c.name, (SELECT ssn || '' AS ssn FROM orders LIMIT 1) AS x FROM customers c",
    "shadow_where": (
        "SELECT c.name FROM customers c WHERE c.id IN "
        "(SELECT o.customer_id AS ssn FROM orders o WHERE ssn < '000000500')"
    ),
    "shadow_group_by": (
        "SELECT c.name, (SELECT max(o.status) AS ssn FROM orders o GROUP BY ssn LIMIT 1) AS x FROM customers c"
    ),
    "shadow_having": (
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT o.status AS ssn FROM orders o "
        "GROUP BY o.status HAVING ssn < '000000500')"
    ),
    "shadow_order_by_expr": (
        "SELECT c.name, (SELECT o.id AS ssn FROM orders o WHERE o.customer_id = c.id "
        "ORDER BY CASE WHEN ssn || '' < '000000500' THEN o.id ELSE -o.id END LIMIT 1) AS x FROM customers c"
    ),
    "shadow_window_partition": (
        "SELECT c.name, (SELECT max(o.id) OVER (PARTITION BY ssn) AS ssn FROM orders o LIMIT 1) AS x "
        "FROM customers c"
    ),
    "shadow_window_order": (
        "SELECT c.name, (SELECT first_value(ssn || '') OVER (ORDER BY o.id) AS ssn FROM orders o LIMIT 1) AS x "
        "FROM customers c"
    ),
    "lateral_outer": "SELECT c.name, l.v FROM customers c, LATERAL (SELECT ssn || '' AS v FROM orders LIMIT 1) l",
    "lateral_alias_shadow": (
        "SELECT c.name, l.v FROM customers c, LATERAL (SELECT o.id AS ssn, ssn || '' AS v FROM orders o LIMIT 1) l"
    ),
    "join_on_bare": (
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id AND ssn < '000000500' LIMIT 3"
    ),
    "join_on_shadow_derived": (
        "SELECT c.name FROM customers c JOIN (SELECT customer_id AS ssn FROM orders) o "
        "ON o.ssn = c.id AND c.ssn < '000000500' LIMIT 3"
    ),
    "using_full_join": (
        "SELECT ssn || '' AS s FROM customers FULL JOIN (SELECT 'x' AS ssn) z USING (ssn) LIMIT 5"
    ),
    "natural_full_join": "SELECT ssn || '' AS s FROM customers NATURAL FULL JOIN (SELECT 'x' AS ssn) z LIMIT 5",
    "table_alias_named_ssn": "SELECT c.name, (SELECT ssn || '' FROM orders AS ssn LIMIT 1) AS x FROM customers c",
    "cte_alias_shadow_inner_table": (
        "WITH c AS (SELECT id, name AS ssn FROM customers) "
        "SELECT (SELECT ssn || '' FROM customers WHERE customers.id = c.id) AS x FROM c LIMIT 3"
    ),
    # correlated subqueries at depth
    "depth2": (
        "SELECT c.name, (SELECT (SELECT ssn || '' FROM orders o2 LIMIT 1) FROM orders o1 LIMIT 1) AS x "
        "FROM customers c"
    ),
    "depth3_aliases": (
        "SELECT c.name, (SELECT (SELECT (SELECT ssn || '' AS ssn FROM orders LIMIT 1) AS ssn FROM orders "
        "LIMIT 1) AS ssn FROM orders LIMIT 1) AS x FROM customers c"
    ),
    "depth3_exists_filter": (
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE EXISTS "
        "(SELECT 1 AS ssn FROM orders p WHERE EXISTS (SELECT 1 FROM orders q WHERE ssn < '000000500')))"
    ),
    # opaque sources
    "opaque_generate_series": (
        "SELECT c.name, (SELECT ssn || '' FROM generate_series(1, 1) LIMIT 1) AS x FROM customers c"
    ),
    "opaque_generate_series_alias": (
        "SELECT c.name, (SELECT ssn || '' FROM generate_series(1, 1) AS g LIMIT 1) AS x FROM customers c"
    ),
    "opaque_values": "SELECT c.name, (SELECT ssn || '' FROM (VALUES (1)) v LIMIT 1) AS x FROM customers c",
    "opaque_values_cols": (
        "SELECT c.name, (SELECT ssn || '' FROM (VALUES (1, 2)) AS v(a, b) LIMIT 1) AS x FROM customers c"
    ),
    "opaque_unnest": "SELECT c.name, (SELECT ssn || '' FROM unnest(ARRAY[1, 2]) LIMIT 1) AS x FROM customers c",
    "opaque_unnest_depth2": (
        "SELECT c.name, (SELECT (SELECT ssn || '' FROM unnest(ARRAY[1]) u LIMIT 1) FROM generate_series(1, 1) "
        "LIMIT 1) AS x FROM customers c"
    ),
    "opaque_in_where": (
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM generate_series(1, 1) WHERE ssn < '000000500')"
    ),
    # quoted identifiers, case folding
    "quoted_dot_alias": 'SELECT "a.b".ssn || \'\' AS x FROM customers AS "a.b" LIMIT 3',
    "quoted_quote_alias": 'SELECT "a""b"."ssn" || \'\' AS x FROM customers "a""b" LIMIT 3',
    "quoted_unicode_alias": 'SELECT "ß".ssn || \'\' AS x FROM customers "ß" LIMIT 3',
    "quoted_lower": 'SELECT "ssn" || \'\' AS x FROM "customers" LIMIT 3',
    "upper_unquoted": "SELECT SSN || '' AS x FROM CUSTOMERS LIMIT 3",
    "mixed_unquoted": "SELECT Ssn || '' AS x FROM Customers c LIMIT 3",
    "quoted_alias_ssn_string": 'SELECT c.name AS "ssn", c.ssn || \'\' AS "name" FROM customers c LIMIT 3',
    # whole-row / record
    "star": "SELECT * FROM customers LIMIT 3",
    "qualified_star": "SELECT c.* FROM customers c LIMIT 3",
    "whole_row_alias": "SELECT c FROM customers c LIMIT 3",
    "whole_row_table": "SELECT customers FROM customers LIMIT 3",
    "row_ctor": "SELECT ROW(c.*) AS r FROM customers c LIMIT 3",
    "to_json_row": "SELECT to_json(c) AS j FROM customers c LIMIT 3",
    "cast_row_text": "SELECT CAST(c AS VARCHAR) AS t FROM customers c LIMIT 3",
    "star_in_derived_outer_star": "SELECT * FROM (SELECT * FROM customers) x LIMIT 3",
    "cte_star": "WITH x AS (SELECT * FROM customers) SELECT x.* FROM x LIMIT 3",
    "cte_star_whole_row": "WITH x AS (SELECT * FROM customers) SELECT to_json(x) AS j FROM x LIMIT 3",
    "view_renamed": "SELECT tax_id || '' AS t FROM customer_cards LIMIT 3",
    "view_whole_row": "SELECT to_json(v) AS j FROM customer_cards v LIMIT 3",
    # set operations and recursive CTEs
    "union_second_branch": "SELECT name FROM customers UNION ALL SELECT ssn FROM customers LIMIT 5000",
    "except_branch": "SELECT ssn FROM customers EXCEPT SELECT name FROM customers LIMIT 3",
    "union_in_derived": (
        "SELECT u.n FROM (SELECT name AS n FROM customers UNION ALL SELECT ssn FROM customers) u LIMIT 5000"
    ),
    "recursive_cte": (
        "WITH RECURSIVE r(id, v) AS (SELECT id, name FROM customers WHERE id = 1 UNION ALL "
        "SELECT c.id, c.ssn FROM r JOIN customers c ON c.id = r.id + 1 WHERE r.id < 3) SELECT v FROM r"
    ),
    "recursive_cte_bare": (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) "
        "SELECT (SELECT ssn || '' FROM r LIMIT 1) AS x FROM customers LIMIT 3"
    ),
    "values_scalar_subquery": "VALUES ((SELECT max(ssn) FROM customers))",
    "values_in_from_subquery": "SELECT * FROM (VALUES ((SELECT max(ssn) FROM customers))) v(x)",
    "limit_subquery_oracle": (
        "SELECT name FROM customers LIMIT (SELECT count(*) FROM customers WHERE ssn < '000000500')"
    ),
    "offset_subquery_oracle": (
        "SELECT name FROM customers OFFSET (SELECT count(*) FROM customers WHERE ssn < '000000500') LIMIT 1"
    ),
    "order_by_output_alias_expr": "SELECT name AS ssn FROM customers c ORDER BY ssn || '' LIMIT 3",
    "group_by_output_alias_name": "SELECT max(name) AS ssn, count(*) AS n FROM customers GROUP BY ssn LIMIT 3",
    "where_output_alias_name": "SELECT name AS ssn FROM customers WHERE ssn < '000000500' LIMIT 3",
    "column_beats_table_alias": "SELECT ssn || '' AS x FROM (SELECT 1 AS y) ssn, customers LIMIT 3",
    "whole_row_compare": "SELECT count(*) AS n FROM customers c WHERE c = c",
    "count_distinct_row": "SELECT count(DISTINCT c) AS n FROM customers c",
    "rollup": "SELECT count(*) AS n FROM customers GROUP BY ROLLUP (region, ssn)",
    "window_frame_subquery": (
        "SELECT sum(o.id) OVER (ORDER BY o.id ROWS BETWEEN (SELECT count(*) FROM customers "
        "WHERE ssn < '000000500') PRECEDING AND CURRENT ROW) AS s FROM orders o LIMIT 3"
    ),
    "explain_analyze": "EXPLAIN ANALYZE SELECT count(*) FROM customers WHERE ssn < '000000500'",
    "explain_plain": "EXPLAIN SELECT ssn FROM customers",
    # blocked table
    "credentials_star": "SELECT * FROM credentials",
    "credentials_via_view": "SELECT * FROM recent_logins",
    "credentials_subquery": "SELECT (SELECT max(secret) FROM credentials) AS s",
    "credentials_exists": "SELECT count(*) AS n FROM orders WHERE EXISTS (SELECT 1 FROM credentials)",
    "credentials_case": 'SELECT * FROM "CREDENTIALS"',
}

DUCK: dict[str, str] = {
    "qualify_shadow": (
        "SELECT c.name, (SELECT o.id AS ssn FROM orders o QUALIFY row_number() OVER (ORDER BY ssn) = 1 "
        "LIMIT 1) AS x FROM customers c"
    ),
    "qualify_outer": "SELECT name FROM customers QUALIFY ssn < '000000500' LIMIT 3",
    "opaque_range": "SELECT c.name, (SELECT ssn || '' FROM range(1) LIMIT 1) AS x FROM customers c",
    "opaque_unnest_select": "SELECT c.name, (SELECT ssn || '' FROM (SELECT unnest([1]))) AS x FROM customers c",
    "pivot_groups_by_rest": "PIVOT customers ON region USING count(*)",
    "pivot_subquery": "SELECT * FROM (PIVOT customers ON region USING count(*)) p LIMIT 3",
    "pivot_opaque_outer": (
        "SELECT c.name, (SELECT ssn || '' FROM (PIVOT orders ON status USING count(*)) p LIMIT 1) AS x "
        "FROM customers c"
    ),
    "unpivot_keeps_rest": "UNPIVOT customers ON name INTO NAME k VALUE v",
    "unpivot_columns": "SELECT * FROM (UNPIVOT customers ON COLUMNS(* EXCLUDE (id)) INTO NAME k VALUE v) LIMIT 8",
    "comprehension_body": "SELECT [x || ssn FOR x IN ['a']] AS l FROM customers LIMIT 3",
    "comprehension_condition": "SELECT [x FOR x IN [1] IF ssn < '000000500'] AS l FROM customers LIMIT 3",
    "comprehension_var_then_column": "SELECT [ssn FOR ssn IN [1]] AS a, ssn || '' AS b FROM customers LIMIT 3",
    "comprehension_iter_subquery": (
        "SELECT [x FOR x IN (SELECT list(ssn || '') FROM customers) IF x IS NOT NULL] AS l"
    ),
    "comprehension_nested": ("SELECT [[y || ssn FOR y IN ['b']] FOR x IN ['a']] AS l FROM customers LIMIT 3"),
    "comprehension_shadow_nested": (
        "SELECT [[ssn FOR ssn IN [2]] FOR x IN [ssn]] AS l FROM customers LIMIT 3"
    ),
    "lambda_nested": "SELECT list_transform([1], x -> list_transform([2], y -> ssn)) AS l FROM customers LIMIT 3",
    "lambda_filter": "SELECT list_filter([1], x -> ssn < '000000500') AS l FROM customers LIMIT 3",
    "lambda_reduce": "SELECT list_reduce(['a', 'b'], (a, b) -> a || ssn) AS l FROM customers LIMIT 3",
    "lambda_param_named_like_column": (
        "SELECT list_transform([1], ssn -> ssn) AS a, list_transform([ssn], z -> z) AS b FROM customers LIMIT 3"
    ),
    "quoted_upper": "SELECT \"SSN\" || '' AS x FROM customers LIMIT 3",
    "quoted_mixed": 'SELECT c."sSn" || \'\' AS x FROM "Customers" c LIMIT 3',
    "columns_star": "SELECT COLUMNS(*) FROM customers LIMIT 3",
    "columns_regex": "SELECT COLUMNS('s.*') FROM customers LIMIT 3",
    "columns_lambda": "SELECT COLUMNS(k -> k LIKE '%s%n') FROM customers LIMIT 3",
    "columns_agg": "SELECT max(COLUMNS(*)) FROM customers",
    "star_exclude": "SELECT * EXCLUDE (name) FROM customers LIMIT 3",
    "star_replace": "SELECT * REPLACE (name AS region) FROM customers LIMIT 3",
    "star_rename": "SELECT * RENAME (ssn AS tax) FROM customers LIMIT 3",
    "star_like": "SELECT * LIKE 's%' FROM customers LIMIT 3",
    "struct_pack_star": "SELECT struct_pack(c.*) AS s FROM customers c LIMIT 3",
    "struct_field_of_row": "SELECT c.ssn || '' AS x FROM (SELECT customers AS c FROM customers) LIMIT 3",
    "struct_extract_row": "SELECT struct_extract(c, 'ssn') AS x FROM customers c LIMIT 3",
    "struct_index_row": "SELECT c['ssn'] AS x FROM customers c LIMIT 3",
    "unnest_row": "SELECT unnest(c) FROM customers c LIMIT 3",
    "list_of_rows": "SELECT list(c) AS l FROM customers c",
    "positional_select": "SELECT #3 FROM customers LIMIT 3",
    "positional_order": "SELECT name FROM customers ORDER BY #3 LIMIT 3",
    "from_first": "FROM customers SELECT ssn LIMIT 3",
    "from_only": "FROM customers LIMIT 3",
    "union_by_name": "SELECT 1 AS id UNION ALL BY NAME SELECT * FROM customers LIMIT 3",
    "union_by_name_from_first": "SELECT name FROM orders UNION BY NAME FROM customers LIMIT 3",
    "positional_join": "SELECT * FROM orders POSITIONAL JOIN customers LIMIT 3",
    "summarize": "SUMMARIZE customers",
    "summarize_subquery": "SELECT * FROM (SUMMARIZE SELECT ssn FROM customers)",
    "query_function": "SELECT * FROM query('SELECT ssn FROM customers')",
    "query_table_function": "SELECT * FROM query_table('customers')",
    "query_table_credentials": "SELECT * FROM query_table('credentials')",
    "json_each_opaque": (
        "SELECT c.name, (SELECT ssn || '' FROM json_each('{\"a\": 1}') LIMIT 1) AS x FROM customers c"
    ),
    "qualified_schema": "SELECT main.customers.ssn FROM main.customers LIMIT 3",
    "unpack_columns": "SELECT concat(*COLUMNS(*)) AS s FROM customers LIMIT 3",
    "star_in_function": "SELECT struct_pack(*) AS s FROM customers LIMIT 3",
    "qualified_star_like": "SELECT c.* LIKE 's%' FROM customers c LIMIT 3",
    "describe": "DESCRIBE SELECT ssn FROM customers",
    "pragma": "PRAGMA table_info('customers')",
    "group_by_all": "SELECT ssn, count(*) FROM customers GROUP BY ALL LIMIT 3",
    "order_by_all": "SELECT * FROM customers ORDER BY ALL LIMIT 3",
    "distinct_on": "SELECT DISTINCT ON (ssn) name FROM customers ORDER BY ssn LIMIT 3",
    "similar_to_filter": "SELECT name FROM customers WHERE ssn SIMILAR TO '0000005.*' LIMIT 3",
    "glob_filter": "SELECT name FROM customers WHERE ssn GLOB '0000005*' LIMIT 3",
    # neighbours: lateral stars, column aliases on derived tables, named windows, struct literals
    "lateral_star": "SELECT * FROM customers c JOIN LATERAL (SELECT c.*) x ON true LIMIT 3",
    "cte_materialized": "WITH t AS MATERIALIZED (SELECT ssn FROM customers) SELECT count(*) FROM t",
    "named_window": "SELECT name FROM customers WINDOW w AS (ORDER BY ssn) QUALIFY row_number() OVER w = 1",
    "arg_max": "SELECT arg_max(name, ssn) FROM customers",
    "order_collate": "SELECT name FROM customers ORDER BY ssn COLLATE nocase LIMIT 3",
    "derived_from_outer": "SELECT c.name, t.* FROM customers c, (SELECT c.ssn) t LIMIT 3",
    "struct_literal_field": "SELECT {'a': c.ssn}.a FROM customers c LIMIT 3",
    "scalar_select_outer": "SELECT c.name FROM customers c WHERE (SELECT ssn) < '0005' LIMIT 3",
    "map_from_entries": "SELECT map_from_entries([(name, ssn)]) FROM customers LIMIT 3",
    "view_star": "SELECT * FROM customer_cards LIMIT 3",
    "qualified_star_exclude": "SELECT c.* EXCLUDE (name) FROM customers c LIMIT 3",
    "columns_qualified_star": "SELECT COLUMNS(c.*) FROM customers c LIMIT 3",
    "derived_column_aliases": "SELECT t.c FROM (SELECT * FROM customers) t(a, b, c, d) LIMIT 3",
    "table_column_aliases": "SELECT x.c FROM customers AS x(a, b, c, d) LIMIT 3",
    "distinct_on_row": "SELECT DISTINCT ON (c) name FROM customers c LIMIT 3",
    "scalar_subquery_of_row": "SELECT (SELECT customers) FROM customers LIMIT 3",
    "list_aggr": "SELECT list_aggr([ssn], 'max') FROM customers LIMIT 3",
    "semi_join_filter": (
        "SELECT * FROM orders SEMI JOIN customers ON customers.ssn < '000000500' "
        "AND customers.id = orders.customer_id LIMIT 3"
    ),
    "lateral_implicit": "SELECT c.name, x FROM customers c, (SELECT c.ssn || '' AS x) LIMIT 3",
}

PG: dict[str, str] = {
    "row_to_json": "SELECT row_to_json(c) AS j FROM customers c LIMIT 3",
    "to_jsonb_field": "SELECT to_jsonb(c) ->> 'ssn' AS x FROM customers c LIMIT 3",
    "array_agg_row": "SELECT array_agg(c)::text AS a FROM customers c",
    "string_agg_row": "SELECT string_agg(c::text, ',') AS s FROM customers c",
    "row_text_cast": "SELECT c::text AS t FROM customers c LIMIT 3",
    "record_field": "SELECT (c).ssn AS x FROM customers c LIMIT 3",
    "record_star_field": "SELECT (c.*).ssn AS x FROM customers c LIMIT 3",
    "record_cast_field": "SELECT (ROW(c.*)::customers).ssn AS x FROM customers c LIMIT 3",
    "composite_type_populate": (
        "SELECT (jsonb_populate_record(NULL::customers, to_jsonb(c))).ssn AS x FROM customers c LIMIT 3"
    ),
    "xmlelement": "SELECT xmlelement(name x, c.ssn)::text AS x FROM customers c LIMIT 3",
    "xmlforest_row": "SELECT xmlforest(c.name, c.ssn)::text AS x FROM customers c LIMIT 3",
    "query_to_xml": "SELECT query_to_xml('SELECT ssn FROM customers LIMIT 3', true, true, '')::text AS x",
    "table_to_xml": "SELECT table_to_xml('customers', true, true, '')::text AS x",
    "json_each_opaque": (
        "SELECT c.name, (SELECT ssn || key FROM json_each('{\"a\": 1}') LIMIT 1) AS x FROM customers c"
    ),
    "jsonb_each_text_opaque": (
        "SELECT c.name, (SELECT ssn || key FROM jsonb_each_text('{\"a\": 1}') j LIMIT 1) AS x FROM customers c"
    ),
    "jsonb_to_record": (
        'SELECT c.name, (SELECT ssn || r.a FROM jsonb_to_record(\'{"a": "1"}\') AS r(a text)) AS x '
        "FROM customers c"
    ),
    "rows_from": "SELECT c.name, (SELECT ssn || '' FROM ROWS FROM (generate_series(1, 1)) LIMIT 1) AS x FROM customers c",
    "with_ordinality": (
        "SELECT c.name, (SELECT ssn || '' FROM unnest(ARRAY[1]) WITH ORDINALITY LIMIT 1) AS x FROM customers c"
    ),
    "regexp_matches_opaque": (
        "SELECT c.name, (SELECT ssn || '' FROM regexp_matches('a', 'a') LIMIT 1) AS x FROM customers c"
    ),
    "pg_unicode_ident": "SELECT U&\"\\0073sn\" || '' AS x FROM customers LIMIT 3",
    "pg_unicode_ident_uescape": "SELECT U&\"!0073sn\" UESCAPE '!' || '' AS x FROM customers LIMIT 3",
    "pg_unicode_ident_vs_lookalike": (
        "SELECT U&\"\\0073sn\" || '' AS x FROM customers c JOIN (SELECT 1 AS u, 'z' AS \"\\0073sn\") k ON k.u = c.id LIMIT 3"
    ),
    "pg_unicode_ident_lookalike_filter": (
        "SELECT c.name FROM customers c JOIN (SELECT 1 AS u, 'z' AS \"\\0073sn\") k ON k.u = c.id WHERE U&\"\\0073sn\" < '000000500' LIMIT 3"
    ),
    # undoing the reader-role switch inside the query
    "pg_set_config_role": "SELECT set_config('role', 'none', true) AS r, (SELECT max(secret) FROM recent_logins r JOIN credentials c USING (id)) AS s",
    "pg_set_config_then_xml": "SELECT set_config('role', current_user, true) || query_to_xml('SELECT ssn FROM customers', true, true, '')::text AS x",
    "pg_ts_stat": "SELECT * FROM ts_stat('SELECT to_tsvector(ssn) FROM customers')",
    "pg_cursor_to_xml": "SELECT cursor_to_xml('c', 1, true, true, '')::text AS x",
    "pg_lo_export_like": "SELECT pg_read_file('/etc/passwd') AS x",
    "pg_dblink_like": "SELECT * FROM current_setting('role') AS r(x) WHERE EXISTS (SELECT 1 FROM customers WHERE ssn < '000000500')",
    "pg_qualified_schema": "SELECT public.customers.ssn FROM public.customers LIMIT 3",
    "pg_only_table": "SELECT ssn FROM ONLY customers LIMIT 3",
    "pg_tablesample": "SELECT ssn FROM customers TABLESAMPLE SYSTEM (100) LIMIT 3",
    "pg_srf_credentials": "SELECT * FROM all_logins()",
    "pg_srf_credentials_select": "SELECT (all_logins()).secret AS s",
    "pg_group_by_output_alias_then_input": (
        "SELECT c.name, (SELECT max(o.status) || '' AS x FROM orders o GROUP BY ssn LIMIT 1) AS y "
        "FROM customers c LIMIT 3"
    ),
    "pg_order_by_alias_expr": (
        "SELECT c.name, (SELECT o.status AS ssn FROM orders o ORDER BY ssn || '' LIMIT 1) AS y "
        "FROM customers c LIMIT 3"
    ),
    "pg_dollar_string_with_quote_ident": (
        'SELECT $$"x".ssn$$ AS lit, "x\'".ssn || \'\' AS v FROM customers AS "x\'" LIMIT 3'
    ),
    "pg_lateral_function": "SELECT c.name, f.x FROM customers c, LATERAL upper(c.ssn) AS f(x) LIMIT 3",
    "pg_lateral_srf_unnest": "SELECT c.name, u FROM customers c, unnest(ARRAY[c.ssn]) AS u LIMIT 3",
    "pg_string_to_table": (
        "SELECT c.name, (SELECT ssn || s FROM string_to_table('a', ',') AS s LIMIT 1) AS x FROM customers c"
    ),
    "pg_json_table": (
        "SELECT c.name, (SELECT ssn || '' FROM json_table('[1]'::jsonb, '$[*]' COLUMNS (a int PATH '$')) j "
        "LIMIT 1) AS x FROM customers c"
    ),
}

# -- generated: every clause x every source kind x every nesting, the bare ``ssn`` binds outward --

_INNER = {
    "select": "SELECT ssn || '' AS ssn FROM {src} LIMIT 1",
    "where": "SELECT 'k' AS ssn FROM {src} WHERE ssn < '000000500' LIMIT 1",
    "group": "SELECT 'k' AS ssn FROM {src} GROUP BY ssn LIMIT 1",
    "having": "SELECT 'k' AS ssn FROM {src} GROUP BY 1 HAVING ssn < '000000500' LIMIT 1",
    "order": "SELECT 'k' AS ssn FROM {src} ORDER BY ssn || '' LIMIT 1",
    "window": "SELECT max(ssn || '') OVER () AS ssn FROM {src} LIMIT 1",
}
_SOURCES = {
    "table": "orders o",
    "table_alias_ssn": "orders AS ssn",
    "series": "generate_series(1, 2) g",
    "values": "(VALUES (1), (2)) v",
    "unnest": "unnest(ARRAY[1, 2]) u",
    "derived": "(SELECT 1 AS y) d",
}
_NESTING = {
    "scalar": "SELECT c.name, ({inner}) AS x FROM customers c LIMIT 3",
    "depth2": "SELECT c.name, (SELECT ({inner}) FROM orders LIMIT 1) AS x FROM customers c LIMIT 3",
    "lateral": "SELECT c.name, l.ssn FROM customers c, LATERAL ({inner}) l LIMIT 3",
    "exists": "SELECT c.name FROM customers c WHERE EXISTS ({inner}) LIMIT 3",
}
GENERATED = {
    f"gen_{n}_{i}_{s}": nest.format(inner=inner.format(src=src))
    for n, nest in _NESTING.items()
    for i, inner in _INNER.items()
    for s, src in _SOURCES.items()
}

# -- oracle shapes: the verdict and its messages must not depend on the literal ----------------

ORACLE_COMMON = [
    "SELECT count(*) AS n FROM customers WHERE CASE WHEN ssn = {p} THEN 1 / 0 ELSE 1 END = 1",
    "SELECT count(*) AS n FROM customers WHERE CAST(CASE WHEN ssn > {p} THEN 'x' ELSE '1' END AS INTEGER) = 1",
    "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 AS ssn FROM orders WHERE ssn = {p}) LIMIT 1",
    "SELECT count(*) AS n FROM customers c WHERE EXISTS (SELECT 1 FROM generate_series(1, 1) WHERE ssn < {p})",
    "SELECT count(*) AS n FROM customers WHERE name LIKE CASE WHEN ssn < {p} THEN 'x%' ELSE '%' END",
    "SELECT count(*) AS n FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn < {p})",
    "SELECT count(*) AS n FROM customer_cards WHERE tax_id < {p}",
    "SELECT count(*) AS n FROM credentials WHERE secret < {p}",
    "SELECT CASE WHEN (SELECT max(ssn) FROM customers) > {p} THEN 1 ELSE 0 END AS b",
    "SELECT count(*) AS n FROM customers WHERE ssn < {p} AND 1 = 0",
    "SELECT count(*) AS n FROM customers WHERE ssn < {p} OR 1 = 1",
]
ORACLE_DUCK = [
    "SELECT len([ssn FOR ssn IN (SELECT list(id) FROM customers WHERE ssn < {p})]) AS r",
    "SELECT count(*) AS n FROM customers WHERE regexp_matches(name, CASE WHEN ssn = {p} THEN '(' ELSE 'a' END)",
    "SELECT count(*) AS n FROM customers WHERE error(CASE WHEN ssn = {p} THEN 'hit' END) IS NULL",
    "SELECT count(*) AS n FROM customers WHERE CAST(CASE WHEN ssn = {p} THEN 'zz' ELSE 'a' END AS ENUM('a')) = 'a'",
    "SELECT count(*) AS n FROM customers WHERE list_filter([1], x -> ssn < {p}) = []",
    "SELECT count(*) AS n FROM customers QUALIFY max(ssn) OVER () < {p}",
    # PIVOT without an IN list: the service lists the values at validation
    "PIVOT (SELECT region FROM customers WHERE ssn < {p}) ON region USING count(*)",
    "PIVOT (SELECT region, id FROM customer_cards JOIN customers USING (id) WHERE tax_id < {p}) ON region USING count(*)",
    "PIVOT (SELECT region FROM customers WHERE EXISTS (SELECT 1 AS ssn WHERE ssn < {p})) ON region USING count(*)",
    "PIVOT (SELECT CASE WHEN ssn < {p} THEN 'a' ELSE 'b' END AS k FROM customers) ON k USING count(*)",
    "PIVOT (SELECT region, name FROM customers) ON region USING count(*) GROUP BY name HAVING max(ssn) < {p}",
]
ORACLE_PG = [
    "SELECT count(*) AS n FROM customers WHERE name ~ CASE WHEN ssn = {p} THEN '(' ELSE 'a' END",
    "SELECT count(*) AS n FROM customers WHERE (CASE WHEN ssn = {p} THEN 'x' ELSE '1' END)::int = 1",
    "SELECT count(*) AS n FROM customers c WHERE to_jsonb(c) ->> 'ssn' < {p}",
    "SELECT count(*) AS n FROM customers c WHERE c::text < {p}",
]
LITERALS = ["'000000001'", "'000000999'", "'950'", "'999z'", "''", "'000000500'", "'a''b'", "'q7'"]

# Misspellings near blocked items: no hint may name them (the query never did).
HINTS = [
    "SELECT ssnx FROM customers",
    "SELECT c.ss FROM customers c",
    "SELECT x.sn FROM (SELECT * FROM customers) x",
    "WITH k AS (SELECT * FROM customers) SELECT sssn FROM k",
    "SELECT * FROM credential",
    "SELECT * FROM credentialz",
    "SELECT secrets FROM recent_logins",
    "SELECT tax_idd FROM customer_cards",
]
HIDDEN_WORDS = ("ssn", "credentials", "secret")


def _leaks(rows: list[list[Any]]) -> list[str]:
    return [str(v) for row in rows for v in row if SSN.search(str(v)) or "secret-" in str(v)]


async def _must_be_refused(svc: CodeModeService, sql: str) -> None:
    v = await svc.validate(sql)
    if v.is_valid:
        result = await svc.execute(v.normalized_code, v.approval_token or "")
        leaked = _leaks(result.rows)
        pytest.fail(f"accepted a query that reads a blocked value; leaked {leaked[:3]!r} for {sql!r}")
    assert codes(v) and v.approval_token is None, v.violations


def _verdict(v: ValidationResult, literal: str) -> str:
    """Everything validation says, with the literal itself put back to a placeholder."""
    shown = v.model_dump(mode="json", exclude={"code_hash", "approval_token", "expires_at"})
    return json.dumps(shown, sort_keys=True).replace(json.dumps(literal)[1:-1], "{p}")


async def _same_verdict_for_every_literal(svc: CodeModeService, shape: str) -> None:
    verdicts = {}
    for lit in LITERALS:
        sql = shape.format(p=lit)
        v = await svc.validate(sql)
        verdicts[lit] = _verdict(v, lit)
        assert not v.is_valid, f"accepted {sql!r}"
    base = json.loads(verdicts[LITERALS[0]])
    diffs = {}
    for lit, text in verdicts.items():
        other = json.loads(text)
        diffs.update({(lit, k): (base[k], other[k]) for k in base if base[k] != other[k]})
    assert not diffs, diffs


async def _hints_hide_blocked(svc: CodeModeService, sql: str) -> None:
    v = await svc.validate(sql)
    assert not v.is_valid
    text = " ".join(f"{x.message} {getattr(x, 'hint', '') or ''}" for x in v.violations).lower()
    named = [w for w in HIDDEN_WORDS if w in text and w not in sql.lower()]
    assert not named, (sql, v.violations)


@pytest.fixture
async def duck(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        yield svc


@pytest.fixture(params=["superuser", "reader"])
async def pg(
    pg_world: PgWorld, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[CodeModeService]:
    url = pg_world.admin_url if request.param == "superuser" else pg_world.reader_url
    settings = pg_world.settings(url, {"audit": {"path": str(tmp_path / "audit.jsonl")}})
    async with CodeModeService(settings) as svc:
        yield svc


DUCK_PROBES = {**COMMON, **DUCK, **GENERATED}
PG_PROBES = {**COMMON, **PG, **GENERATED}


@pytest.mark.parametrize("sql", DUCK_PROBES.values(), ids=DUCK_PROBES.keys())
async def test_duckdb_probe_is_refused(duck: CodeModeService, sql: str) -> None:
    await _must_be_refused(duck, sql)


@pytest.mark.postgres
@pytest.mark.parametrize("sql", PG_PROBES.values(), ids=PG_PROBES.keys())
async def test_postgres_probe_is_refused(pg: CodeModeService, sql: str) -> None:
    await _must_be_refused(pg, sql)


@pytest.mark.parametrize("shape", ORACLE_COMMON + ORACLE_DUCK)
async def test_duckdb_oracle_verdict_is_literal_independent(duck: CodeModeService, shape: str) -> None:
    await _same_verdict_for_every_literal(duck, shape)


@pytest.mark.postgres
@pytest.mark.parametrize("shape", ORACLE_COMMON + ORACLE_PG)
async def test_postgres_oracle_verdict_is_literal_independent(pg: CodeModeService, shape: str) -> None:
    await _same_verdict_for_every_literal(pg, shape)


@pytest.mark.parametrize("sql", HINTS)
async def test_duckdb_hints_name_no_blocked_item(duck: CodeModeService, sql: str) -> None:
    await _hints_hide_blocked(duck, sql)


@pytest.mark.postgres
@pytest.mark.parametrize("sql", HINTS)
async def test_postgres_hints_name_no_blocked_item(pg: CodeModeService, sql: str) -> None:
    await _hints_hide_blocked(pg, sql)
