"""The static import graph of a copy of ``sqlmode/``: every way one module can reach another.

tests/test_layers.py checks DESIGN's layer rule and the absence of import circles over this graph;
tests/test_layers_mutations.py applies known-bad edits to a temporary copy of the package and
asserts that the same checker reports each of them. The graph over-approximates: an import it
cannot pin down counts as reaching everything it might reach, and a dynamic import whose target
it cannot name at all is reported as a problem, so a new way of importing fails the test rather
than slipping past it.

Edges come from, anywhere in a file (function bodies and ``if TYPE_CHECKING`` blocks included):

- ``import sqlmode.x`` / ``from sqlmode.x import y`` / relative ``from ..x import y``;
- names taken through a package: ``from sqlmode import CodeModeService`` resolves to the module the
  package re-exports the name from, eagerly (``from .service import ...``) or lazily (a module-level
  ``__getattr__`` with a literal table of names);
- attribute chains on a bound package: ``import sqlmode`` then ``sqlmode.service.X`` or
  ``sqlmode.CodeModeService``; a package used other than through an attribute chain reaches every
  module under it;
- ``importlib.import_module(...)``, ``import_module(...)`` and ``__import__(...)``: a string
  constant (a literal, a module-level constant, an f-string or ``+`` of those, ``__name__`` and
  ``__package__``) resolves exactly; any other argument is tried with every string constant of the
  file, and all the sqlmode modules that yields are reached.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = "sqlmode"
# Calls that import a module named by a string (importlib.import_module, a bare import_module, __import__).
_DYNAMIC_CALLS = {"import_module", "__import__"}


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` reaches ``target`` through the statement at ``line``."""

    source: str
    target: str
    line: int
    local: bool  # inside a function body: runs on first call, not at import
    bare: bool = False  # `import sqlmode.x`: only makes sure the package is initialised


class ImportGraph:
    """Modules of the package at ``pkg_dir`` (a directory named ``sqlmode``) and their edges."""

    def __init__(self, pkg_dir: Path, *, skip: frozenset[str] = frozenset({"_bundled"})) -> None:
        self.pkg_dir = pkg_dir
        self.files: dict[str, Path] = {}
        for path in sorted(pkg_dir.rglob("*.py")):
            rel = path.relative_to(pkg_dir)
            if skip & set(rel.parts):
                continue
            parts = [ROOT, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self.files[".".join(parts)] = path
        parsed = {m: _parse(p.read_text()) for m, p in self.files.items()}
        self.trees = {m: t.tree for m, t in parsed.items()}
        self.nodes = {m: t.nodes for m, t in parsed.items()}
        self.parents = {m: t.parents for m, t in parsed.items()}
        self._problems: dict[str, None] = {}  # ordered and without repeats
        self._dynamic_cache: dict[str, list[Edge]] = {}
        self._names_cache: dict[tuple[str, str], frozenset[str]] = {}
        self._resolving: set[tuple[str, str]] = set()
        self.edges: dict[str, list[Edge]] = {m: list(self._edges_of(m)) for m in self.files}

    # -- shapes of the package ---------------------------------------------------------------

    def is_package(self, module: str) -> bool:
        return self.files[module].name == "__init__.py"

    def package_of(self, module: str) -> str:
        return module if self.is_package(module) else module.rsplit(".", 1)[0]

    def under(self, package: str) -> frozenset[str]:
        """The package and every module below it."""
        return frozenset(m for m in self.files if m == package or m.startswith(package + "."))

    @property
    def problems(self) -> list[str]:
        """Imports the graph could not pin down (each is a failure of the layer test)."""
        return list(self._problems)

    def rel(self, module: str) -> str:
        return str(self.files[module].relative_to(self.pkg_dir.parent))

    def targets(self, module: str) -> set[str]:
        """Modules ``module`` reaches directly. A bare ``import`` of its own ancestor package is not
        one (Python initialises the ancestor before the module runs); taking a name the ancestor's
        ``__init__`` defines is."""
        return {e.target for e in self.edges[module] if not (e.bare and module.startswith(e.target + "."))}

    # -- resolution --------------------------------------------------------------------------

    def _absolute(self, module: str, level: int, name: str | None) -> str:
        return _relative(self.package_of(module), level, name) if level else name or ""

    def _reach(self, target: str) -> frozenset[str]:
        """What importing ``target`` as a whole object can reach: a module, or all of a package."""
        if target not in self.files:
            return frozenset()
        return self.under(target) if self.is_package(target) else frozenset({target})

    def name_in(self, package: str, name: str) -> frozenset[str]:
        """The modules ``from package import name`` can reach."""
        key = (package, name)
        if key in self._names_cache:
            return self._names_cache[key]
        if key in self._resolving:  # a re-export cycle: the statement itself is the edge
            return frozenset({package})
        self._resolving.add(key)
        try:
            found = self._name_in(package, name)
        finally:
            self._resolving.discard(key)
        self._names_cache[key] = found
        return found

    def _name_in(self, package: str, name: str) -> frozenset[str]:
        sub = f"{package}.{name}"
        if sub in self.files:
            return frozenset({sub})
        if package not in self.files or not self.is_package(package):
            return frozenset({package}) if package in self.files else frozenset()
        tree = self.trees[package]
        found: set[str] = set()
        lazy = False
        for node in _module_level(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        base = self._absolute(package, node.level, node.module)
                        found |= self.name_in(base, alias.name) if base in self.files else set()
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == name:
                        found |= self._reach(alias.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "__getattr__":
                lazy = True
            elif isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
                # A lazy table: {"Name": ("module", "attr")} or {"Name": ".module"}.
                for k, v in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == name:
                        found |= {
                            t for s in _strings_in(v) if (t := f"{package}.{s.lstrip('.')}") in self.files
                        }
        if found:
            return frozenset(found)
        if lazy:  # a name only __getattr__ knows: everything it may import
            return frozenset(e.target for e in self.dynamic_edges(package))
        return frozenset({package})  # defined in the __init__ itself

    def dynamic_edges(self, module: str) -> list[Edge]:
        """The edges of the importlib calls in ``module``."""
        if module not in self._dynamic_cache:
            self._dynamic_cache[module] = [
                e
                for node, local in self.nodes[module]
                if isinstance(node, ast.Call) and _callee(node) in _DYNAMIC_CALLS
                for e in self._dynamic(module, node, local=local)
            ]
        return self._dynamic_cache[module]

    def _dynamic(self, module: str, call: ast.Call, *, local: bool) -> Iterator[Edge]:
        tree = self.trees[module]
        args = list(call.args)
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        name_expr = args[0] if args else kw.get("name")
        package_expr = args[1] if len(args) > 1 and _callee(call) == "import_module" else kw.get("package")
        if name_expr is None:
            self._problems[f"{self.rel(module)}:{call.lineno}: an import call without a module name"] = None
            return
        exact, names = _candidates(name_expr, module, self, tree)
        packages: set[str] | None = {self.package_of(module)}
        if package_expr is not None:
            exact_pkg, pkgs = _candidates(package_expr, module, self, tree)
            packages = pkgs if exact_pkg else None
        reached: set[str] = set()
        for n in names:
            if n.startswith("."):
                for p in packages or set(self.files):
                    reached |= self._reach(_relative(p, len(n) - len(n.lstrip(".")), n.lstrip(".") or None))
            elif n == ROOT or n.startswith(ROOT + "."):
                reached |= self._reach(n)
        if not exact and not (reached and self.is_package(module)):
            # A computed module name is the lazy re-export idiom of a package __init__; anywhere else
            # it would hide an edge, so write the name as a constant instead.
            self._problems[
                f"{self.rel(module)}:{call.lineno}: a dynamic import of a computed module name outside a "
                "package __init__'s lazy table; name the module with a string constant"
            ] = None
        for t in sorted(reached):
            yield Edge(module, t, call.lineno, local)

    def _edges_of(self, module: str) -> Iterator[Edge]:
        parents = self.parents[module]
        bound: dict[str, str] = {}  # a local name -> the sqlmode module or package it is bound to
        for node, local in self.nodes[module]:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not (alias.name == ROOT or alias.name.startswith(ROOT + ".")):
                        continue
                    if alias.name in self.files:
                        yield Edge(module, alias.name, node.lineno, local, bare=True)
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = ROOT
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node.level, node.module)
                if not (base == ROOT or base.startswith(ROOT + ".")):
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        targets = self._reach(base)
                    else:
                        targets = self.name_in(base, alias.name)
                        sub = f"{base}.{alias.name}"
                        if sub in self.files:
                            bound[alias.asname or alias.name] = sub
                    for t in sorted(targets):
                        yield Edge(module, t, node.lineno, local)
        yield from self.dynamic_edges(module)
        # Attribute chains on bound modules and packages: `sqlmode.service.X`, `sqlmode.CodeModeService`.
        for node, local in self.nodes[module]:
            if isinstance(node, ast.Attribute) and _parent_attr(node, parents) is None:
                chain = _chain(node)
                if chain and chain[0] in bound:
                    for t in sorted(self._follow(bound[chain[0]], chain[1:])):
                        yield Edge(module, t, node.lineno, local)
            elif isinstance(node, ast.Name) and node.id in bound and not _is_chain_head(node, parents):
                # passed around or handed to getattr(): it may reach anything under it
                for t in sorted(self._reach(bound[node.id])):
                    yield Edge(module, t, node.lineno, local)

    def _follow(self, current: str, attrs: list[str]) -> frozenset[str]:
        for attr in attrs:
            if f"{current}.{attr}" in self.files:
                current = f"{current}.{attr}"
            elif self.is_package(current):
                return self.name_in(current, attr)
            else:
                return frozenset({current})
        return self._reach(current)  # the module itself, or a package handed on whole


# -- the checks ------------------------------------------------------------------------------


def layer_of(module: str, placement: dict[str, str]) -> str | None:
    """'sqlmode.analyze.parse' -> 'analyze': ``placement`` of 'package.module', else of the
    top-level name, else the top-level name itself."""
    parts = module.split(".")
    if parts[0] != ROOT or len(parts) < 2:
        return None
    return placement.get(".".join(parts[1:3]), placement.get(parts[1], parts[1]))


def layer_violations(
    graph: ImportGraph, module: str, layers: list[str], placement: dict[str, str], free: set[str]
) -> list[str]:
    """Why ``module`` breaks the layer rule: each import of a layer to its right (or, from a shared
    module, of any layer). The root package is the public API; reaching it means reaching what its
    ``__init__`` imports when it runs."""
    rel = graph.rel(module)
    own = layer_of(module, placement)
    if own not in layers and own not in free:
        return [f"{rel} is in no known layer; add it to PLACEMENT"]
    out = []
    for edge in graph.edges[module]:
        if edge.bare and module.startswith(edge.target + "."):
            continue  # `import sqlmode` in a submodule: the root is initialised already
        for target in sorted(_expand_root(graph, edge.target)):
            layer = layer_of(target, placement)
            if layer is None or layer in free or layer == own:
                continue
            where = f"{rel}:{edge.line}{' (function-local)' if edge.local else ''}"
            if layer not in layers:
                out.append(f"{where} imports {target}, which is in no known layer")
            elif own in free:
                out.append(f"{where} is a shared module ({own}) and imports {target} ({layer})")
            elif own is not None and own in layers and layers.index(layer) > layers.index(own):
                out.append(f"{where} ({own}) imports {target} ({layer}): a layer to its right")
    return out


def _expand_root(graph: ImportGraph, target: str) -> set[str]:
    if target != ROOT:
        return {target}
    # Running the root __init__ runs its module-level imports, nothing else.
    return {
        e.target for e in graph.edges[ROOT] if not e.local and e.target != ROOT and e.target in graph.files
    }


def import_circles(graph: ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    adj = {m: sorted(graph.targets(m) - {m}) for m in graph.files}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = itertools.count()
    for start in adj:
        if start in index:
            continue
        work = [(start, iter(adj[start]))]
        index[start] = low[start] = next(counter)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = next(counter)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(adj[w])))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def circle_path(graph: ImportGraph, circle: list[str]) -> str:
    """One cycle through the group, with the lines that make it, for the failure message."""
    members = set(circle)
    start = circle[0]
    path = [start]
    seen = {start}
    cur = start
    while True:
        nxt = sorted(graph.targets(cur) & members)
        if start in nxt and len(path) > 1:
            path.append(start)
            break
        step = next((n for n in nxt if n not in seen), None)
        if step is None:
            path.append(nxt[0] if nxt else start)
            break
        path.append(step)
        seen.add(step)
        cur = step
    hops = []
    for a, b in itertools.pairwise(path):
        line = next((e.line for e in graph.edges[a] if e.target == b), 0)
        hops.append(f"{graph.rel(a)}:{line} -> {b}")
    return "; ".join(hops)


# -- ast helpers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parsed:
    tree: ast.Module
    nodes: list[tuple[ast.AST, bool]]
    parents: dict[int, ast.AST]


_PARSED: dict[str, _Parsed] = {}


def _parse(text: str) -> _Parsed:
    """Parse once per distinct source text: the mutation tests build many graphs of near-copies."""
    if text not in _PARSED:
        tree = ast.parse(text)
        nodes = list(_walk(tree))
        parents = {id(c): n for n, _ in nodes for c in ast.iter_child_nodes(n)}
        _PARSED[text] = _Parsed(tree, nodes, parents)
    return _PARSED[text]


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements that run when the module does: the body and its if/try blocks, no functions."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        yield node
        if isinstance(node, ast.If | ast.Try):
            todo[:0] = [
                *node.body,
                *node.orelse,
                *getattr(node, "handlers", []),
                *getattr(node, "finalbody", []),
            ]
        elif isinstance(node, ast.ExceptHandler):
            todo[:0] = node.body


def _walk(tree: ast.Module) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it sits inside a function body."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, local = todo.pop()
        yield node, local
        inner = local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        todo.extend((child, inner) for child in ast.iter_child_nodes(node))


def _callee(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _strings_in(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _module_constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in _module_level(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            out[node.target.id] = node.value.value
    return out


def _candidates(expr: ast.expr, module: str, graph: ImportGraph, tree: ast.Module) -> tuple[bool, set[str]]:
    """The strings ``expr`` can evaluate to, and whether that set is exact."""
    specials = {"__name__": module, "__package__": graph.package_of(module)}
    constants = _module_constants(tree)
    every = set(_strings_in(tree))

    def values(e: ast.expr) -> tuple[bool, set[str]]:
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            return True, {e.value}
        if isinstance(e, ast.Name) and e.id in specials:
            return True, {specials[e.id]}
        if isinstance(e, ast.Name) and e.id in constants:
            return True, {constants[e.id]}
        if isinstance(e, ast.JoinedStr):
            parts = [values(v.value if isinstance(v, ast.FormattedValue) else v) for v in e.values]
            return all(p[0] for p in parts), {"".join(c) for c in itertools.product(*(p[1] for p in parts))}
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
            (ea, a), (eb, b) = values(e.left), values(e.right)
            return ea and eb, {x + y for x in a for y in b}
        return False, every

    return values(expr)


def _relative(package: str, level: int, name: str | None) -> str:
    base = package.split(".")
    base = base[: len(base) - level + 1]
    return ".".join(base + ([name] if name else []))


def _parent_attr(node: ast.AST, parents: dict[int, ast.AST]) -> ast.Attribute | None:
    parent = parents.get(id(node))
    return parent if isinstance(parent, ast.Attribute) and parent.value is node else None


def _is_chain_head(node: ast.Name, parents: dict[int, ast.AST]) -> bool:
    return _parent_attr(node, parents) is not None or not isinstance(node.ctx, ast.Load)


def _chain(node: ast.Attribute) -> list[str] | None:
    attrs: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        attrs.append(cur.attr)
        cur = cur.value
    if not isinstance(cur, ast.Name):
        return None
    return [cur.id, *reversed(attrs)]
