"""The function allowlist, applied to every call in the tree (table functions in FROM too).

sqlglot parses known functions into typed nodes (``SUM`` -> ``exp.Sum``,
``date_trunc`` -> ``exp.TimestampTrunc``) and unknown ones into ``exp.Anonymous``.
So the allowlist is written as SQL names, and compiled once per dialect into the node
classes those names parse to (by parsing a sample call) plus the anonymous names.
A typed node is allowed when its class is; an anonymous call when its name is. The
node class decides what is rendered and run, so two spellings of one class share the
decision (DuckDB's ``range`` and ``generate_series`` are one node).

Generators and padding are allowed only with literal bounds (FUNCTION_ARGUMENT_LIMIT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp

from ..engines.base import EngineTraits

MAX_GENERATED_ROWS = 100_000
MAX_GENERATED_CHARS = 100_000
MAX_PAD_LENGTH = 10_000

_AGGREGATES = """
count sum avg min max count_if countif bool_and bool_or every any_value first last arbitrary
string_agg array_agg list group_concat listagg json_agg jsonb_agg json_object_agg jsonb_object_agg
json_group_array json_group_object stddev stddev_pop stddev_samp variance var_pop var_samp corr
covar_pop covar_samp regr_slope regr_intercept regr_r2 regr_count regr_avgx regr_avgy regr_sxx
regr_syy regr_sxy median mode percentile_cont percentile_disc quantile quantile_cont quantile_disc
approx_count_distinct approx_quantile arg_max arg_min argmax argmin max_by min_by bit_and bit_or
bit_xor histogram kurtosis skewness entropy product fsum favg geomean grouping grouping_id
mean mad sem kurtosis_pop reservoir_quantile histogram_exact arg_max_null
arg_min_null kahan_sum sumkahan sum_no_overflow approx_top_k weighted_avg wavg geometric_mean
"""
_WINDOW = "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value"
_MATH = """
abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 log2 mod div greatest
least pi degrees radians sin cos tan asin acos atan atan2 cot random width_bucket gcd lcm isnan
isinf isfinite even round_even bit_count scale trim_scale factorial
fmod signbit nextafter gamma lgamma sinh cosh tanh asinh acosh atanh xor bin unbin roundbankers
greatest_common_divisor least_common_multiple equi_width_bins
sind cosd tand cotd asind acosd atand atan2d erf erfc min_scale to_bin to_oct
"""
_STRING = """
lower upper length char_length character_length octet_length bit_length substring substr left
right trim ltrim rtrim btrim lpad rpad replace concat concat_ws position strpos instr split_part
string_split str_split regexp_replace regexp_matches regexp_match regexp_extract regexp_full_match
regexp_split_to_array regexp_like regexp_count regexp_substr initcap reverse starts_with
ends_with contains to_char to_number md5 sha256 ascii chr translate quote_literal strip_accents
levenshtein jaro_winkler_similarity jaro_similarity damerau_levenshtein hamming jaccard prefix
suffix string_to_array array_to_string printf format repeat nullif coalesce ifnull nvl if iif
unicode ord lcase ucase overlay split encode decode to_hex hex to_base64 from_base64 base64
strlen sha1 hash md5_number regexp_extract_all regexp_escape regexp_instr like_escape ilike_escape
not_like_escape not_ilike_escape left_grapheme right_grapheme length_grapheme substring_grapheme
nfc_normalize normalize unistr url_encode url_decode unhex from_hex to_binary from_binary to_base
format_bytes bar convert_to convert_from quote_ident quote_nullable string_to_table
regexp_split_to_table string_split_regex str_split_regex editdist3 mismatches
sha224 sha384 sha512 crc32 crc32c casefold is_normalized pg_size_pretty pg_size_bytes
"""
_DATETIME = """
now current_date current_timestamp current_time localtime localtimestamp date_trunc date_part
datepart extract date_diff datediff date_sub date_add age make_date make_time make_timestamp
make_timestamptz make_interval to_timestamp to_date strftime strptime try_strptime epoch epoch_ms
year month day quarter week weekday dayofweek dayofyear dayofmonth hour minute second isodow
isoyear yearweek last_day monthname dayname justify_days justify_hours justify_interval date_bin
time_bucket timezone to_days to_months to_years to_hours to_minutes to_seconds to_weeks
transaction_timestamp statement_timestamp clock_timestamp century decade millennium era
millisecond microsecond week_of_year weekofyear date time timestamp date_format
today timezone_hour timezone_minute epoch_us epoch_ns nanosecond julian make_timestamp_ms to_quarters
to_decades to_centuries to_millennia to_milliseconds to_microseconds datetrunc datesub date_subtract
days_in_month
"""
_JSON = """
json_extract json_extract_string json_extract_path json_extract_path_text jsonb_extract_path
jsonb_extract_path_text json_array_length jsonb_array_length json_object json_array
json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
json_typeof jsonb_typeof json_each jsonb_each json_each_text jsonb_each_text json_array_elements
jsonb_array_elements json_array_elements_text jsonb_array_elements_text jsonb_object_keys
json_object_keys json_keys json_valid json_type json_value jsonb_path_query jsonb_path_query_first
jsonb_path_exists json_structure jsonb_set jsonb_strip_nulls json_strip_nulls json_contains
row_to_json array_to_json json jsonb_pretty json_exists json_query
json_pretty json_quote jsonb_path_query_array json_to_record jsonb_to_record json_to_recordset
jsonb_to_recordset json_merge_patch json_transform json_transform_strict
"""
_ARRAY = """
array_length cardinality array_position array_positions array_append array_prepend array_cat
array_remove array_replace array_upper array_lower array_dims array_contains array_has
list_contains list_has unnest list_value list_extract list_element array_extract list_slice
array_slice list_sort array_sort list_reverse_sort list_distinct array_distinct list_unique
list_aggregate array_aggregate list_transform array_transform list_filter array_filter filter
list_reduce array_reduce list_concat array_concat len flatten list_reverse array_reverse
struct_pack struct_extract row struct_insert map map_extract map_keys map_values element_at array
generate_subscripts list_has_any list_has_all array_has_any array_has_all list_min list_max
list_sum list_avg list_count list_position list_zip array_zip
list_apply array_apply list_cat list_indexof array_indexof list_intersect array_intersect
list_select array_select list_where array_where list_resize array_resize list_grade_up array_grade_up
list_distance array_distance list_cosine_similarity array_cosine_similarity list_cosine_distance
array_cosine_distance list_dot_product array_dot_product list_inner_product array_inner_product
map_entries map_contains map_concat map_from_entries struct_keys struct_values struct_concat
union_value union_tag union_extract struct_contains array_fill array_ndims trim_array array_value array_unique
list_append list_prepend array_push_back array_push_front array_pop_back array_pop_front list_pack
list_median list_mode list_first list_last list_any_value list_product list_sem list_stddev_pop
list_stddev_samp list_var_pop list_var_samp list_kurtosis list_skewness list_entropy list_bool_and
list_bool_or list_string_agg list_histogram list_aggr list_approx_count_distinct list_mad
array_reverse_sort map_contains_value map_contains_entry map_extract_value struct_has struct_position
struct_indexof struct_extract_at
"""
_CASTS = "cast try_cast typeof pg_typeof num_nulls num_nonnulls try"
_TEXT_SEARCH = """
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_headline
"""
_GENERATORS = "generate_series range"
# PostgreSQL's range and multirange types: constructors, bounds, tests and their aggregates.
_RANGES = """
int4range int8range numrange tsrange tstzrange daterange int4multirange int8multirange
nummultirange tsmultirange tstzmultirange datemultirange isempty lower_inc upper_inc lower_inf
upper_inf range_merge multirange range_agg range_intersect_agg
"""

DEFAULT_ALLOWLIST: frozenset[str] = frozenset(
    " ".join(
        [
            _AGGREGATES,
            _WINDOW,
            _MATH,
            _STRING,
            _DATETIME,
            _JSON,
            _ARRAY,
            _CASTS,
            _TEXT_SEARCH,
            _GENERATORS,
            _RANGES,
        ]
    ).split()
)

# Node classes that are syntax rather than a named call (operators, CASE-like forms,
# special-argument functions such as EXTRACT(x FROM y)), always allowed.
_SYNTAX_CLASSES: frozenset[type] = frozenset(
    {
        exp.And,
        exp.Or,
        exp.Xor,
        exp.Pow,
        exp.RegexpLike,
        exp.RegexpILike,
        exp.Cast,
        exp.TryCast,
        exp.Extract,
        exp.Trim,
        exp.Substring,
        exp.StrPosition,
        exp.Coalesce,
        exp.Case,
        exp.If,
        exp.Nullif,
        exp.CurrentDate,
        exp.CurrentTimestamp,
        exp.CurrentTime,
        exp.Localtimestamp,
        exp.Localtime,
        exp.JSONExtract,
        exp.JSONExtractScalar,
        exp.JSONBExtract,
        exp.JSONBExtractScalar,
        exp.JSONBContains,
        exp.ArrayContains,
        exp.ArrayContainsAll,
        exp.ArrayOverlaps,
        exp.Array,
        exp.Struct,
        exp.Map,
        exp.VarMap,
        exp.ToMap,
        exp.Explode,
        exp.Unnest,
        exp.Lambda,
        exp.Interval,
        exp.AnyValue,
        exp.Count,
        exp.Overlay,
        exp.Exists,
        exp.Columns,
        exp.Window,
        exp.Filter,
        exp.WithinGroup,
        exp.Collate,  # `x COLLATE "C"`: an operator naming a collation
    }
    & {c for c in vars(exp).values() if isinstance(c, type)}
)

# Calls that run a generator: checked for literal bounds when allowed.
GENERATOR_CLASSES: tuple[type, ...] = tuple(
    c for c in (getattr(exp, "GenerateSeries", None), getattr(exp, "ExplodingGenerateSeries", None)) if c
)


@dataclass(frozen=True, slots=True)
class FunctionPolicy:
    """The compiled allowlist for one dialect and one config."""

    allowed_classes: frozenset[type]
    denied_classes: frozenset[type]
    allowed_names: frozenset[str]
    denied_names: frozenset[str]
    display: dict[type, str]

    def name_of(self, node: exp.Func) -> str:
        """The normalized name of a call, as the allowlist spells it."""
        if isinstance(node, exp.Anonymous):
            return str(node.name).lower()
        cls = type(node)
        if cls in self.display:
            return self.display[cls]
        names = cls.sql_names()
        return names[0].lower() if names else cls.key

    def allows(self, node: exp.Func) -> bool:
        if isinstance(node, exp.Anonymous):
            name = str(node.name).lower()
            return name in self.allowed_names and name not in self.denied_names
        cls = type(node)
        if cls in self.denied_classes:
            return False
        if cls in self.allowed_classes or cls in _SYNTAX_CLASSES:
            return True
        names = {n.lower() for n in cls.sql_names()} | {cls.key}
        return bool(names & self.allowed_names) and not (names & self.denied_names)


def _classes_for(name: str, dialect: str) -> set[type]:
    """Node classes a call named ``name`` parses to in ``dialect`` (empty: anonymous).

    A name the parser maps straight to ``SomeFunc.from_arg_list`` is that class; other
    names (builders that vary by arity, special-syntax parsers) are found by parsing
    sample calls. The shortcut keeps Analyzer start-up near 20 ms instead of 100 ms.
    """
    parser = _dialect(dialect).parser_class
    upper = name.upper()
    if upper not in parser.FUNCTION_PARSERS and upper not in parser.NO_PAREN_FUNCTIONS:
        builder = parser.FUNCTIONS.get(upper)
        if builder is None:
            return set()
        owner = getattr(builder, "__self__", None)
        if isinstance(owner, type) and issubclass(owner, exp.Func):
            return {owner}
    return _classes_by_parsing(name, dialect)


def _dialect(name: str):
    from .parse import sqlglot_dialect

    return sqlglot_dialect(name)


def _classes_by_parsing(name: str, dialect: str) -> set[type]:
    found: set[type] = set()
    for args in ("", "a", "a, b", "a, b, c"):
        try:
            tree = sqlglot.parse_one(f"SELECT {name}({args})", read=dialect)
        except Exception:
            continue
        proj = tree.expressions[0] if tree.expressions else None
        if proj is None:
            continue
        for node in proj.walk():
            if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
                found.add(type(node))
    return found


def policy_for(
    traits: EngineTraits, allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()
) -> FunctionPolicy:
    """The compiled allowlist for an engine: its sqlglot dialect and the operators it parses
    into function nodes (``EngineTraits.operator_samples``)."""
    return compile_policy(traits.sqlglot_dialect, allow, deny, operators=traits.operator_samples)


@lru_cache(maxsize=32)
def compile_policy(
    dialect: str, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), *, operators: tuple[str, ...]
) -> FunctionPolicy:
    """Compile allowlist names (defaults + config allow - config deny) for sqlglot's ``dialect``.

    ``operators`` are sample expressions (``a -> 'x'``) the engine parses into function nodes:
    the node classes they parse to are allowed, like the names'.
    """
    allowed = (DEFAULT_ALLOWLIST | {a.lower() for a in allow}) - {d.lower() for d in deny}
    denied = frozenset(d.lower() for d in deny)
    allowed_classes: set[type] = set()
    display: dict[type, str] = {}
    for name in sorted(allowed):
        for cls in _classes_for(name, dialect):
            allowed_classes.add(cls)
            display.setdefault(cls, name)
    for sample in operators:
        try:
            tree = sqlglot.parse_one(f"SELECT {sample}", read=dialect)
        except Exception:
            continue
        allowed_classes |= {
            type(n) for n in tree.walk() if isinstance(n, exp.Func) and not isinstance(n, exp.Anonymous)
        }
    denied_classes: set[type] = set()
    for name in denied:
        denied_classes |= _classes_for(name, dialect)
    return FunctionPolicy(
        allowed_classes=frozenset(allowed_classes - denied_classes),
        denied_classes=frozenset(denied_classes),
        allowed_names=frozenset(allowed),
        denied_names=denied,
        display=display,
    )


# -- literal evaluation for bounds ------------------------------------------------------


def _number(node: exp.Expr | None) -> float | None:
    if node is None:
        return None
    if isinstance(node, exp.Paren):
        return _number(node.this)
    if isinstance(node, exp.Neg):
        v = _number(node.this)
        return -v if v is not None else None
    if isinstance(node, exp.Cast):
        return _number(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None


# Interval lengths in days: shortest for steps and longest for spans, so counts are upper bounds.
_HOURS = {"hour": 1 / 24, "minute": 1 / 1440, "second": 1 / 86400}
_UNIT_DAYS_MIN = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365, **_HOURS}
_UNIT_DAYS_MAX = {"day": 1, "week": 7, "month": 31, "quarter": 92, "year": 366, **_HOURS}


def _interval_days(node: exp.Expr | None, table: dict[str, float]) -> float | None:
    """An interval literal in days ('1 day', INTERVAL 1 MONTH, '1 week'::interval)."""
    if node is None:
        return None
    if isinstance(node, exp.Cast):
        node = node.this
    text = unit = None
    if isinstance(node, exp.Interval):
        text = node.this.name if node.this is not None else None
        unit_node = node.args.get("unit")
        unit = unit_node.name if unit_node is not None else None
    elif isinstance(node, exp.Literal) and node.is_string:
        text = node.this
    if text is None:
        return None
    parts = str(text).split()
    if unit is None and len(parts) == 2:
        text, unit = parts
    elif len(parts) == 1:
        text = parts[0]
    else:
        return None
    u = (unit or "day").lower().rstrip("s")
    try:
        n = float(text)
    except ValueError:
        return None
    return n * table[u] if u in table else None


_CAST_LIKE: tuple[type, ...] = tuple(
    c
    for c in (
        exp.Cast,
        exp.TryCast,
        getattr(exp, "TsOrDsToDate", None),
        getattr(exp, "TsOrDsToTimestamp", None),
    )
    if c
)


def _moment(node: exp.Expr | None) -> float | None:
    """A date/timestamp expression as days since epoch, when it is built from literals."""
    if node is None:
        return None
    if isinstance(node, exp.Paren):
        return _moment(node.this)
    if isinstance(node, _CAST_LIKE):
        return _moment(node.this)
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            d = dt.datetime.fromisoformat(str(node.this).strip())
        except ValueError:
            return None
        return d.timestamp() / 86400
    if isinstance(node, (exp.CurrentDate, exp.CurrentTimestamp)) or (
        isinstance(node, exp.Anonymous) and node.name.lower() == "now"
    ):
        return dt.datetime.now().timestamp() / 86400
    if isinstance(node, (exp.Add, exp.Sub)):
        base = _moment(node.this)
        delta = _interval_days(node.expression, _UNIT_DAYS_MAX)
        if delta is None:
            delta = _number(node.expression)  # date +/- integer: days
        if base is None or delta is None:
            return None
        return base + delta if isinstance(node, exp.Add) else base - delta
    return None


def generated_rows(node: exp.Func) -> int | None:
    """Upper bound of rows a generate_series/range call makes, or None when unbounded."""
    start, end, step = node.args.get("start"), node.args.get("end"), node.args.get("step")
    if start is None and end is None:
        return None
    a, b = _number(start) if start is not None else 0.0, _number(end)
    if a is not None and b is not None:
        s = _number(step) if step is not None else 1.0
        if not s:
            return None
        return max(0, int((b - a) / s) + 1)
    ma, mb = _moment(start), _moment(end)
    if ma is not None and mb is not None:
        s_days = _interval_days(step, _UNIT_DAYS_MIN) if step is not None else 1.0
        if not s_days:
            return None
        return max(0, int(abs(mb - ma) / s_days) + 1)
    return None


def argument_problem(node: exp.Func) -> str | None:
    """Why a generator/padding call is outside its bounds, or None when it is fine."""
    if isinstance(node, GENERATOR_CLASSES) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in ("generate_series", "range")
    ):
        if isinstance(node, exp.Anonymous):
            args = node.expressions
            fake = exp.GenerateSeries(
                start=args[0] if len(args) > 1 else exp.Literal.number(0),
                end=args[1] if len(args) > 1 else (args[0] if args else None),
                step=args[2] if len(args) > 2 else None,
            )
            rows = generated_rows(fake)
        else:
            rows = generated_rows(node)
        if rows is None:
            # Mostly a calendar spine between the data's first and last dates: two queries do it.
            return (
                "generate_series/range needs literal bounds (numbers, or dates and a literal interval); "
                "for bounds taken from the data, query them first (min/max) and write them as literals "
                "(DATE '2024-01-01')"
            )
        if rows > MAX_GENERATED_ROWS:
            return f"generate_series/range would make about {rows:,} rows; at most {MAX_GENERATED_ROWS:,}"
        return None
    if isinstance(node, exp.Repeat):
        times = _number(node.args.get("times"))
        if times is None:
            return "repeat() needs a literal count"
        this = node.this
        width = len(this.this) if isinstance(this, exp.Literal) and this.is_string else 100
        size = int(times * max(width, 1))
        if size > MAX_GENERATED_CHARS:
            return f"repeat() would build {size:,} characters; at most {MAX_GENERATED_CHARS:,}"
        return None
    if isinstance(node, exp.Pad):
        length = _number(node.expression)
        if length is None:
            return "lpad/rpad need a literal length"
        if length > MAX_PAD_LENGTH:
            return f"lpad/rpad length {int(length):,} is above {MAX_PAD_LENGTH:,}"
    return None


# -- how to name a refusal -------------------------------------------------------------

_FILE_NAMES = (
    "read_",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "lo_",
    "glob",
    "sniff_csv",
    "parquet_",
    "iceberg_",
)
_FILE_EXACT = frozenset({"delta_scan", "pg_file_write", "read_text", "read_blob", "load_aws_credentials"})
_INTROSPECTION_NAMES = (
    "duckdb_",
    "pragma_",
    "pg_get_",
    "pg_table",
    "pg_relation",
    "pg_total_relation",
    "pg_stat",
)
_INTROSPECTION_EXACT = frozenset(
    {
        "current_schema",
        "current_schemas",
        "current_database",
        "current_catalog",
        "current_user",
        "session_user",
        "user",
        "version",
        "current_version",
        "has_table_privilege",
        "has_column_privilege",
        "has_schema_privilege",
        "pg_has_role",
        "obj_description",
        "col_description",
        "to_regclass",
        "summary",
        "which_secret",
        "test_all_types",
    }
)


def refusal_code(name: str) -> str:
    """The violation code for a refused call: file access, introspection, or not allowed."""
    low = name.lower()
    if low in _FILE_EXACT or low.startswith(_FILE_NAMES):
        return "FILE_ACCESS"
    if low in _INTROSPECTION_EXACT or low.startswith(_INTROSPECTION_NAMES):
        return "INTROSPECTION_BLOCKED"
    return "FUNCTION_NOT_ALLOWED"
