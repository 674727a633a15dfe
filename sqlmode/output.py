"""What the CLI prints from data: nothing a terminal or a spreadsheet would act on.

Cells, column names and messages can hold anything the database (or whoever wrote its rows) put
there. Printed raw, an ESC sequence retitles the window, clears the screen or writes the clipboard
(OSC 52), and a CSV cell such as ``=HYPERLINK(...)`` or ``@SUM(...)`` runs as a formula when the
file is opened in a spreadsheet. So:

- table and message text: every control or invisible formatting character (Unicode categories Cc,
  Cf, Zl, Zp: C0, DEL, C1, bidi overrides, zero-width marks, line separators) is printed as a
  visible escape (``\\x1b``, ``\\u202e``); printable text is unchanged;
- JSON: ``\\u`` escapes for the characters JSON itself lets through raw (DEL, C1, bidi...);
- CSV: a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
  ``'`` (OWASP's advice), unless it is a plain number; ``--csv-raw`` turns this off for programs.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from typing import Any

from .models import QueryResult

__all__ = ["format_csv", "format_table", "safe_json", "terminal_safe"]

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
# Candidates only: anything outside printable ASCII; the category decides per character.
_CANDIDATE = re.compile(r"[^\x20-\x7e]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _escape(ch: str) -> str:
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def terminal_safe(text: str) -> str:
    """``text`` with control and invisible formatting characters shown as escapes."""
    return _CANDIDATE.sub(lambda m: _escape(m.group(0)) if _unsafe(m.group(0)) else m.group(0), text)


def safe_json(text: str) -> str:
    """A JSON document with the characters JSON allows raw but terminals obey written as ``\\u`` escapes.

    Only valid inside JSON strings, where these characters can only occur: the document stays equal.
    """

    def fix(m: re.Match[str]) -> str:
        ch = m.group(0)
        return json.dumps(ch)[1:-1] if ord(ch) >= 0x20 and _unsafe(ch) else ch

    return _CANDIDATE.sub(fix, text)


def format_table(result: QueryResult, max_width: int = 40) -> str:
    """A plain text table for people; no cell can move the cursor or talk to the terminal."""
    headers = [terminal_safe(c.name) for c in result.columns]

    def cell(v: Any) -> str:
        s = "NULL" if v is None else (json.dumps(v, default=str) if isinstance(v, dict | list) else str(v))
        s = terminal_safe(s)
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    rows = [[cell(v) for v in row] for row in result.rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    more = " (truncated at the row limit)" if result.truncated else ""
    out.append(f"({result.row_count} rows{more}, {result.elapsed_ms:.1f} ms)")
    return "\n".join(out)


def csv_cell(v: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading ``'`` before a formula-like start."""
    if isinstance(v, dict | list):
        v = json.dumps(v, default=str)
    if isinstance(v, str) and v.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(v):
        return "'" + v
    return v


def format_csv(result: QueryResult, *, raw: bool = False) -> str:
    """CSV with a header; formula-like text cells neutralized unless ``raw``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    fix = (lambda v: v) if raw else csv_cell
    w.writerow([fix(c.name) for c in result.columns])
    w.writerows([fix(v) for v in row] for row in result.rows)
    return buf.getvalue()
