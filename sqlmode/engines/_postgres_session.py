"""Whether a PostgreSQL statement could have left state behind in its session.

A read-only statement that commits can still change its session: ``set_config(.., false)``,
session advisory locks, or a function that runs SET, LISTEN, PREPARE or DECLARE ... WITH HOLD.
All of these need a function call written in the statement (the reader role cannot create
functions, views or operators; whatever the administrator defined is theirs). So a statement
whose text calls nothing outside :data:`SAFE_FUNCTIONS` cannot have changed its session, and the
reset round trip after it can be skipped; anything else (an unknown function, a quoted or
escaped name, a block comment that could hide one) resets the session before it is reused.

The check is deliberately textual and conservative: a name inside a string literal counts as a
call, which only costs an unneeded reset.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["SAFE_FUNCTIONS", "may_change_session"]

# Built-in functions without session side effects, plus keywords that precede "(".
_SAFE_WORDS = """
    select from where and or not in exists any all some as on using join lateral values over filter
    within group by partition order rows range groups between and having limit offset fetch union
    intersect except with recursive case when then else end is null true false cast row array
    coalesce nullif greatest least extract substring position trim overlay interval distinct count
    sum avg min max stddev stddev_pop stddev_samp variance var_pop var_samp bool_and bool_or every
    array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg percentile_cont
    percentile_disc mode corr covar_pop covar_samp regr_slope regr_intercept row_number rank
    dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value abs ceil
    ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div pi width_bucket
    random greatest least date_trunc date_part date_bin age now current_date current_time
    current_timestamp localtime localtimestamp make_date make_time make_timestamp make_timestamptz
    make_interval to_char to_date to_timestamp to_number justify_days justify_hours justify_interval
    isfinite timezone clock_timestamp statement_timestamp transaction_timestamp lower upper initcap
    length char_length character_length octet_length bit_length concat concat_ws replace split_part
    left right lpad rpad ltrim rtrim btrim strpos starts_with reverse repeat translate format md5
    regexp_replace regexp_match regexp_matches regexp_split_to_array regexp_like regexp_count
    regexp_substr string_to_array array_to_string array_length array_position array_positions
    cardinality unnest array_remove array_append array_prepend array_cat generate_series to_json
    to_jsonb json_build_object jsonb_build_object json_build_array jsonb_build_array
    jsonb_extract_path jsonb_extract_path_text json_extract_path json_extract_path_text
    jsonb_array_length json_array_length jsonb_typeof json_typeof jsonb_array_elements
    json_array_elements jsonb_array_elements_text json_array_elements_text jsonb_each
    jsonb_each_text json_each json_each_text jsonb_object_keys numeric int int2 int4 int8 integer
    bigint smallint decimal float float4 float8 real double precision varchar char character text
    date time timestamp timestamptz bool boolean explain verbose
"""
SAFE_FUNCTIONS = frozenset(_SAFE_WORDS.split())

# An unquoted name starts where no name character precedes it and is matched possessively: scanning
# from inside a name, or backtracking into one, finds nothing the match at its start did not (same
# calls found), at a fraction of the cost on long texts (it runs on every novel query).
_CALL = re.compile(r'((?<![A-Za-z0-9_$])[A-Za-z_][A-Za-z0-9_$]*+|"(?:[^"]|"")*")(?:\s|--[^\n]*(?:\n|$))*\(')


@lru_cache(maxsize=2048)
def may_change_session(sql: str) -> bool:
    """True unless every call in ``sql`` is a known side-effect-free built-in (see module doc)."""
    if "/*" in sql or "U&" in sql or "u&" in sql:
        return True
    for m in _CALL.finditer(sql):
        name = m.group(1)
        if name.startswith('"'):
            name = name[1:-1].replace('""', '"')
            if name not in SAFE_FUNCTIONS:  # quoted names are case-sensitive
                return True
        elif name.lower() not in SAFE_FUNCTIONS:
            return True
    return False
