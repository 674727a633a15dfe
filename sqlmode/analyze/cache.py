"""Analyses remembered between validate_code and execute_code (bounded LRU, per process).

execute_code re-checks the analysis because the schema or the rules may have moved since the
token was minted. When neither moved, the analysis of the same text is the same: the analyzer is
a pure function of (code, snapshot, settings). The key holds all three:

- the code text exactly as given (validate's analysis is also filed under the normalized code
  it produced, which is what clients send to execute_code: that text was parsed back by sqlglot
  and by the engine's own parser at validation, and it is what the token's code hash binds);
- the snapshot's *content* hash (every reflected table and column, hidden and blocked ones
  included, and the blocked and allowed sets), not the bounded schema hash the token binds: a
  blocked column added behind ``SELECT *`` changes what the analyzer must refuse while an LLM
  sees the same schema;
- the config hash (the analyzer's rules all derive from the settings).

Only analyses that passed are kept (a refusal is recomputed; it never needs a token). An entry
built without its plain-language explanation (execute_code does not need one) does not answer a
call that asks for it. Entries are copied in and out: callers go on to merge the engine's
verdict into the analysis they get.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace

from ..config import Settings
from ..models import Analysis

__all__ = ["ANALYSIS_CACHE_SIZE", "AnalysisCache", "config_hash"]

# Entries kept per process. An analysis is a few KB (lists of names, a few small dicts), so the
# cache stays under a few MB; a validate -> execute pair needs only its own entry to survive
# the calls in between.
ANALYSIS_CACHE_SIZE = 512

_Key = tuple[str, str, str]


def config_hash(settings: Settings) -> str:
    """A hash of everything the analyzer's rules derive from."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:32]


def _copy(a: Analysis) -> Analysis:
    return replace(
        a,
        tables=list(a.tables),
        columns=list(a.columns),
        functions=list(a.functions),
        violations=list(a.violations),
        table_schemas=dict(a.table_schemas),
        targets=None if a.targets is None else list(a.targets),
    )


class AnalysisCache:
    """``get``/``put`` analyses by (code, snapshot content hash, config hash); at most ``size`` kept."""

    def __init__(self, size: int = ANALYSIS_CACHE_SIZE):
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[_Key, tuple[Analysis, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, code: str, snapshot_hash: str, config: str, *, explanation: bool = True) -> Analysis | None:
        """A copy of the analysis of ``code`` under that snapshot and config, or None."""
        key = (code, snapshot_hash, config)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (explanation and not entry[1]):
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return _copy(entry[0])

    def put(
        self, code: str, snapshot_hash: str, config: str, analysis: Analysis, *, explanation: bool = True
    ) -> None:
        """Keep ``analysis`` of ``code`` (and file it under its normalized code), if it passed."""
        if not analysis.ok or not analysis.normalized_code:
            return
        kept = _copy(analysis)
        entries = [((code, snapshot_hash, config), kept)]
        if analysis.normalized_code != code:
            normalized = analysis.normalized_code
            entries.append(((normalized, snapshot_hash, config), replace(kept, code=normalized)))
        with self._lock:
            for key, value in entries:
                old = self._entries.get(key)
                if old is not None and old[1] and not explanation:
                    continue  # keep the richer entry
                self._entries[key] = (value, explanation)
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
