"""Database values made JSON-safe, with large cells capped.

Rows leave the executor as lists of values that ``json.dumps`` accepts as they are:

- integers, booleans and strings pass through; floats too, except NaN and the infinities,
  which become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``;
- numeric/decimal values become their exact decimal string (``"43.68"``; a binary float could
  change the digits), as do NaN and the infinities;
- dates, times and timestamps become ISO 8601 strings (with the zone offset when there is one;
  PostgreSQL's own text form ``2024-05-01 10:30:00+00``, DuckDB's ``2024-05-01T10:30:00+00:00``);
  intervals become ISO 8601 durations (``P1Y2M3DT4H5M6S``);
- UUIDs, network addresses, enums and bit strings become strings; bytes become ``\\x`` + hex;
- json/jsonb is parsed (each element of a json array too, and on DuckDB a json field or element
  anywhere in a struct, list or map); arrays, records and structs become lists or objects,
  converted deeply;
  ranges become ``{"lower": .., "upper": .., "bounds": "[)"}`` (or ``"empty"``).

A cell whose text would exceed ``max_cell_bytes`` (UTF-8) is cut there and ends with
:data:`CAP_MARKER` naming its full size, so a single huge value cannot flood the answer.

Speed matters here (the execution benchmark includes this step): plans are chosen once per
result shape and cached (each engine maps its driver's types to a plan: engines/_*_convert.py),
columns that need nothing are skipped, the rest is done column-wise with C-level ``map``; a large
result is converted a chunk at a time while the driver's rows are released (rows held once).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import ipaddress
import json
import math
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain, repeat
from operator import is_, itemgetter
from typing import Any

__all__ = [
    "CAP_MARKER",
    "CHUNK_ROWS",
    "ColumnPlan",
    "Converter",
    "cap_text",
    "common_converters",
    "convert_consuming",
    "convert_rows",
    "iso_duration",
    "json_cell",
    "json_safe",
    "json_value",
]

CAP_MARKER = "…[truncated: {size} bytes]"

Converter = Callable[[Any], Any]


def cap_text(s: str, max_bytes: int) -> str:
    """``s`` cut to ``max_bytes`` UTF-8 bytes (on a character boundary) plus the marker, if too long."""
    if len(s) * 4 <= max_bytes:  # cannot exceed: no encoding needed
        return s
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= max_bytes:
        return s
    return b[:max_bytes].decode("utf-8", "ignore") + CAP_MARKER.format(size=len(b))


def _float(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def iso_duration(months: int, days: int, microseconds: int) -> str:
    """ISO 8601 duration of a (months, days, microseconds) interval, e.g. ``P1Y2M3DT4H5M6.5S``."""
    if not (months or days or microseconds):
        return "PT0S"
    out = ["P"]
    y, m = divmod(abs(months), 12)
    sign_m = "-" if months < 0 else ""
    if y:
        out.append(f"{sign_m}{y}Y")
    if m:
        out.append(f"{sign_m}{m}M")
    if days:
        out.append(f"{days}D")
    if microseconds:
        sign = "-" if microseconds < 0 else ""
        us = abs(microseconds)
        h, us = divmod(us, 3_600_000_000)
        mi, us = divmod(us, 60_000_000)
        sec, us = divmod(us, 1_000_000)
        out.append("T")
        if h:
            out.append(f"{sign}{h}H")
        if mi:
            out.append(f"{sign}{mi}M")
        if sec or us:
            frac = f".{us:06d}".rstrip("0") if us else ""
            out.append(f"{sign}{sec}{frac}S")
    return "".join(out)


def _timedelta(td: _dt.timedelta) -> str:
    return iso_duration(0, td.days, td.seconds * 1_000_000 + td.microseconds)


def _bytes(b: bytes | bytearray | memoryview, max_bytes: int) -> str:
    raw = bytes(b)
    room = max(0, (max_bytes - 2) // 2)
    if len(raw) <= room:
        return "\\x" + raw.hex()
    return "\\x" + raw[:room].hex() + CAP_MARKER.format(size=len(raw))


def _range(r: Any, max_bytes: int) -> Any:
    if r.isempty:
        return "empty"
    bounds = ("[" if r.lower_inc else "(") + ("]" if r.upper_inc else ")")
    return {"lower": json_safe(r.lower, max_bytes), "upper": json_safe(r.upper, max_bytes), "bounds": bounds}


def _capped_structure(value: Any, max_bytes: int) -> Any:
    """A converted list/dict, or its JSON text capped when it is too big for one cell."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text) * 4 <= max_bytes or len(text.encode("utf-8", "surrogatepass")) <= max_bytes:
        return value
    return cap_text(text, max_bytes)


def _json_text(s: str, max_bytes: int) -> Any:
    if len(s) * 4 > max_bytes and len(s.encode("utf-8", "surrogatepass")) > max_bytes:
        return cap_text(s, max_bytes)
    try:
        return json.loads(s)
    except ValueError:  # not JSON after all (a text column typed json by a view): keep the text
        return s


def _json_items(v: Any, max_bytes: int) -> Any:
    """An array of json values: each element parsed like a json column (nested arrays too)."""
    if isinstance(v, str):
        return _json_text(v, max_bytes)
    if isinstance(v, list | tuple):
        return [_json_items(x, max_bytes) for x in v]
    return _deep(v, max_bytes)


def _deep(v: Any, max_bytes: int) -> Any:
    """JSON-safe form of any value, without the per-cell cap on containers (applied by the caller)."""
    if v is None or v is True or v is False:
        return v
    cls = v.__class__
    if cls is int:
        return v
    if cls is str:
        return cap_text(v, max_bytes)
    if cls is float:
        return _float(v)
    if cls is decimal.Decimal:
        return str(v)
    if isinstance(v, dict):
        return {str(k): _deep(x, max_bytes) for k, x in v.items()}
    if isinstance(v, list | tuple):  # includes asyncpg Records and geometric tuples
        return [_deep(x, max_bytes) for x in v]
    if isinstance(v, _dt.datetime | _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return _timedelta(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return _bytes(v, max_bytes)
    if isinstance(v, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(v)
    if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(v)
    if isinstance(v, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(v)
    if isinstance(v, int):  # bool handled above; IntEnum and friends
        return int(v)
    if isinstance(v, float):
        return _float(float(v))
    if hasattr(v, "isempty") and hasattr(v, "lower_inc"):  # asyncpg.Range
        return _range(v, max_bytes)
    if hasattr(v, "as_string"):  # asyncpg.BitString
        return v.as_string()
    return cap_text(str(v), max_bytes)


def json_value(v: Any, max_bytes: int) -> Any:
    """A json value met inside a struct, list or map: parsed from its text like a json column's
    (its text, capped, when it is too big or not JSON); anything else made JSON-safe."""
    return _json_text(v, max_bytes) if isinstance(v, str) else _deep(v, max_bytes)


def json_cell(value: Any, max_bytes: int) -> Any:
    """A converted list or dict as one cell: itself, or its JSON text capped when too big."""
    return _capped_structure(value, max_bytes) if isinstance(value, list | dict) else value


def json_safe(v: Any, max_bytes: int = 8192) -> Any:
    """Any database value as a JSON-safe value, capped to ``max_bytes`` per cell."""
    out = _deep(v, max_bytes)
    if isinstance(out, list | dict):
        return _capped_structure(out, max_bytes)
    return out


class ColumnPlan:
    """How to convert each column of one result: a converter per column (None: as is)."""

    __slots__ = ("converters", "max_bytes", "rowwise", "text_columns")

    def __init__(self, converters: Sequence[Converter | str | None], max_bytes: int):
        self.max_bytes = max_bytes
        # "text" marks columns that only need the length check, done inline in convert_rows.
        self.text_columns = [i for i, c in enumerate(converters) if c == "text"]
        deep = common_converters(max_bytes)["deep"]
        # (column, converter, by value): a column of a type the engine does not name (enums,
        # domains, arrays, structs) is looked at as a whole first: often its values are plain.
        self.converters = [(i, c, c is deep) for i, c in enumerate(converters) if callable(c)]
        # Columns to convert and none by value: one pass over the rows beats the column-wise
        # passes (transpose, convert, check, transpose back) once the rows no longer sit in cache.
        self.rowwise: Callable[[Sequence[Sequence[Any]]], list[list[Any]]] | None = None
        if (
            self.converters
            and len(converters) <= ROWWISE_MAX_COLUMNS
            and not any(d for *_, d in self.converters)
        ):
            self.rowwise = _rowwise(len(converters), self.text_columns, self.converters, max_bytes)


# Wider results keep the column-wise conversion (the generated function grows with the width).
ROWWISE_MAX_COLUMNS = 64


def _rowwise(
    width: int, text_columns: Sequence[int], converters: Sequence[tuple[int, Any, bool]], max_bytes: int
) -> Callable[[Sequence[Sequence[Any]]], list[list[Any]]]:
    """A function converting rows one at a time, each cell as :func:`convert_rows` would.

    Generated from the plan alone: its text holds column numbers and fixed templates, never a
    name, type or value from the database (those reach it only as the rows it is called with).
    """
    env: dict[str, Any] = {"cap_text": cap_text, "max_bytes": max_bytes, "limit": max_bytes // 4}
    conv = {i: c for i, c, _ in converters}
    texts = set(text_columns)
    cells = []
    for i in range(width):
        v = f"v{i}"
        if i in conv:
            env[f"c{i}"] = conv[i]
            cells.append(f"None if {v} is None else c{i}({v})")
        elif i in texts:
            cells.append(f"{v} if {v} is None or len({v}) <= limit else cap_text({v}, max_bytes)")
        else:
            cells.append(v)
    names = "".join(f"v{i}, " for i in range(width))
    src = f"def convert(records):\n    return [[{', '.join(cells)}] for ({names}) in records]\n"
    exec(compile(src, "<sqlmode row converter>", "exec"), env)
    fn: Callable[[Sequence[Sequence[Any]]], list[list[Any]]] = env["convert"]
    return fn


# Rows are converted (and, with convert_consuming, the driver's rows released) this many at a time,
# so a large result is never held twice whole: the driver's rows and their JSON-safe copy.
CHUNK_ROWS = 4096
_PLAIN = frozenset({int, bool, type(None)})


def convert_rows(records: Sequence[Sequence[Any]], plan: ColumnPlan) -> list[list[Any]]:
    """Rows as lists of JSON-safe values, following ``plan``.

    Work is done a column at a time with C-level ``zip``/``map`` where possible: a Python loop per
    cell would cost more than the driver's own decoding.
    """
    if not records:
        return []
    if plan.rowwise is not None:
        return plan.rowwise(records)
    max_bytes = plan.max_bytes
    limit = max_bytes // 4  # a string this short cannot exceed max_bytes in UTF-8
    if not plan.converters:
        rows = list(map(list, records))
        for i in plan.text_columns:
            if max(map(len, filter(None, map(itemgetter(i), records))), default=0) > limit:
                for row in rows:
                    v = row[i]
                    if v is not None and len(v) > limit:
                        row[i] = cap_text(v, max_bytes)
        return rows
    cols: list[Any] = list(zip(*records, strict=True))
    text = list(plan.text_columns)
    for i, conv, by_value in plan.converters:
        col = cols[i]
        if by_value:
            kinds = set(map(type, col))
            if kinds <= _PLAIN:
                continue  # integers, booleans, NULL: JSON-safe as they are
            if kinds <= {str, type(None)}:
                text.append(i)  # an enum or a text domain: only the length cap applies
                continue
        # Not ``None in col``: that compares every value with None (~85 us for 1,000 Decimals).
        if any(map(is_, col, repeat(None))):
            cols[i] = [None if v is None else conv(v) for v in col]
        else:
            cols[i] = list(map(conv, col))
    for i in text:
        col = cols[i]
        if max(map(len, filter(None, col)), default=0) > limit:
            cols[i] = [cap_text(v, max_bytes) if v is not None and len(v) > limit else v for v in col]
    return list(map(list, zip(*cols, strict=True)))


def convert_consuming(records: list[Any], plan: ColumnPlan) -> list[list[Any]]:
    """:func:`convert_rows`, emptying ``records`` as it goes (from the end, :data:`CHUNK_ROWS` at a time).

    The caller must hold no other reference to the rows: each chunk of driver rows is freed once its
    JSON-safe copy exists, so the peak is one copy of the result plus a chunk, not two copies.
    """
    if len(records) <= CHUNK_ROWS:
        out = convert_rows(records, plan)
        records.clear()
        return out
    parts: list[list[list[Any]]] = []
    while records:
        start = max(0, len(records) - CHUNK_ROWS)
        parts.append(convert_rows(records[start:], plan))
        del records[start:]
    parts.reverse()
    return list(chain.from_iterable(parts))


# -- converters by column type ------------------------------------------------------------


@lru_cache(maxsize=16)
def common_converters(max_bytes: int) -> dict[str, Converter | str | None]:
    deep = _deep_converter(max_bytes)
    return {
        "int": None,
        "bool": None,
        "text": "text",
        "float": _float,
        "decimal": str,  # exact: no binary float in between
        "datetime": _dt.datetime.isoformat,
        "date": _dt.date.isoformat,
        "time": _dt.time.isoformat,
        "timedelta": _timedelta,
        "str": str,
        "bytes": lambda v: _bytes(v, max_bytes),
        "json": lambda v: _json_text(v, max_bytes) if isinstance(v, str) else json_safe(v, max_bytes),
        "json_array": lambda v: (
            _capped_structure(_json_items(v, max_bytes), max_bytes) if v is not None else None
        ),
        "deep": deep,
    }


def _deep_converter(max_bytes: int) -> Converter:
    return lambda v: json_safe(v, max_bytes)
