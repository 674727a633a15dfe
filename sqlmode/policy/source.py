"""Where policy text comes from: the three layers, their files, and change detection.

Layers, in evaluation order (Cedar itself is order-free; the order is for people
reading the effective set and for positional ids):

1. ``baseline``: ``policies/baseline.cedar``, always loaded.
2. ``server``: generated from the TOML config (see :mod:`.generate`).
3. ``custom``: the files and folders listed in ``policy.paths`` (``*.cedar``).

The schema is ``policies/sqlmode.cedarschema``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings, bundled_path
from ..errors import PolicyError
from .generate import server_policies

SCHEMA_FILE = "sqlmode.cedarschema"
BASELINE_FILE = "baseline.cedar"
SERVER_SOURCE = "<config: server policies>"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """The text of one layer or file."""

    layer: str  # "baseline" | "server" | "custom"
    name: str  # file path, or SERVER_SOURCE for the generated layer
    text: str


@dataclass(frozen=True, slots=True)
class Statement:
    """One policy statement (annotations included) and the line it starts on."""

    source: PolicySource
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Sources:
    """Everything the engine loads, plus the file stamps that tell when to reload."""

    schema_path: Path
    schema_text: str
    layers: tuple[PolicySource, ...]
    stamps: tuple[tuple[str, int, int, int], ...]


def policies_dir() -> Path:
    """The bundled ``policies/`` folder (schema, baseline, examples)."""
    return bundled_path("policies")


def custom_files(settings: Settings) -> list[Path]:
    """Expand ``policy.paths``: files as given, folders to their ``*.cedar`` files, sorted.

    A configured path that does not exist is an error: an administrator's policy that
    silently fails to load would leave the server more open than intended.
    """
    files: list[Path] = []
    for raw in settings.policy.paths:
        p = settings.resolve_path(raw)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.cedar") if q.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise PolicyError(
                f"{p}: configured policy path does not exist",
                hint="Fix policy.paths in the config, or create the file.",
                path=str(p),
            )
    return files


def watched_paths(settings: Settings, base: Path | None = None) -> list[Path]:
    """Every path whose change means a reload: schema, baseline, custom files and folders."""
    base = base or policies_dir()
    paths = [base / SCHEMA_FILE, base / BASELINE_FILE]
    for raw in settings.policy.paths:
        p = settings.resolve_path(raw)
        paths.append(p)
        if p.is_dir():  # a new file in a subfolder changes only that subfolder's mtime
            paths.extend(sorted(d for d in p.rglob("*") if d.is_dir()))
    # A missing path is itself watched (above); load_sources reports it.
    with contextlib.suppress(PolicyError):
        paths.extend(custom_files(settings))
    return paths


def stamps(paths: list[Path] | list[str]) -> tuple[tuple[str, int, int, int], ...]:
    """A cheap fingerprint of files and folders: mtime, size and inode (folders: new files)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((str(p), -1, -1, -1))
    return tuple(out)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"{path}: cannot read policy file: {e.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: policy file is not UTF-8 text", path=str(path)) from None


def load_sources(settings: Settings, base: Path | None = None) -> Sources:
    """Read the schema and the three layers for ``settings``."""
    base = base or policies_dir()
    watched = watched_paths(settings, base)
    # Stamp before reading, so a write racing this load is noticed on the next check.
    st = stamps(watched)
    schema_path = base / SCHEMA_FILE
    layers = [PolicySource("baseline", str(base / BASELINE_FILE), _read(base / BASELINE_FILE))]
    layers.append(PolicySource("server", SERVER_SOURCE, server_policies(settings)))
    layers.extend(PolicySource("custom", str(f), _read(f)) for f in custom_files(settings))
    return Sources(schema_path, _read(schema_path), tuple(layers), st)


def split_statements(source: PolicySource) -> list[Statement]:
    """Split Cedar text into statements, each with the line it starts on.

    cedarpy's parse errors carry no position, so the checker parses statement by
    statement to name the line. This scanner knows just enough Cedar to find the
    ``;`` that ends a policy: ``//`` comments and ``"..."`` strings with escapes.
    Text after the last ``;`` (a missing semicolon) becomes a statement of its own so
    that the parser reports it.
    """
    text = source.text
    out: list[Statement] = []
    i, n, line = 0, len(text), 1
    start: int | None = None
    start_line = 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch.isspace():
            i += 1
            continue
        if start is None:
            start, start_line = i, line
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
            i += 1
            continue
        if ch == ";":
            out.append(Statement(source, start_line, text[start : i + 1]))
            start = None
        i += 1
    if start is not None:
        out.append(Statement(source, start_line, text[start:]))
    return out


def effective_text(sources: Sources) -> str:
    """All layers concatenated with headers naming where each came from."""
    parts = []
    for src in sources.layers:
        parts.append(f"// ===== layer: {src.layer} ({src.name}) =====\n{src.text.rstrip()}\n")
    return "\n".join(parts)


def policy_hash_of(schema_text: str, text: str) -> str:
    """The hash approval tokens bind to: the schema plus the effective policy text."""
    h = hashlib.sha256()
    h.update(schema_text.encode())
    h.update(b"\0")
    h.update(text.encode())
    return h.hexdigest()
