"""What every rule reads: the settings derived once (:class:`RuleSet`) and one resolved
statement with the facts rules record on it (:class:`RuleContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from ...config import Settings
from ...engines.base import EngineTraits, settings_engine
from ...models import Complexity, Violation
from ...schema.snapshot import SchemaSnapshot
from ..classify import Inventory
from ..codes import violation
from ..complexity import Block, measure, query_blocks
from ..functions import FunctionPolicy, policy_for
from ..references import References, resolve

# Schemas that are catalogs, not data, under any engine (PostgreSQL's, and the pg_catalog
# views other engines copy); the engine's own EngineTraits.system_schemas count as well.
CATALOG_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "pg_temp"})
# Relation-name prefixes of catalogs, any engine's: over-approximating costs nothing, since a
# table the snapshot knows by such a name is still a table.
CATALOG_TABLE_PREFIXES = ("pg_", "duckdb_", "sqlite_", "pragma_")
# Catalog relations that leak data or secrets even when introspection is allowed:
# pg_stats holds most-common values and histograms of every column, blocked ones included.
ALWAYS_BLOCKED_CATALOG = frozenset(
    {
        "pg_stats",
        "pg_statistic",
        "pg_stats_ext",
        "pg_authid",
        "pg_shadow",
        "pg_user_mapping",
        "duckdb_secrets",
    }
)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything derived from Settings once: limits, switches, the function policy, and the
    engine facts rules need (never its name)."""

    traits: EngineTraits
    functions: FunctionPolicy
    block_introspection: bool
    max_depth: int
    max_joins: int
    max_fields: int
    max_complexity: int
    max_rows: int
    allow_writes: bool
    allow_deletes: bool
    extra_blocked_tables: frozenset[str]
    extra_blocked_columns: frozenset[tuple[str, str]]

    @classmethod
    def from_settings(cls, settings: Settings, traits: EngineTraits | None = None) -> RuleSet:
        """``traits``: the engine's (default: the engine ``database.url`` names)."""
        traits = traits if traits is not None else settings_engine(settings).traits
        cm = settings.code_mode
        # Bare names too: a reference the snapshot cannot key (ambiguous, unknown) still matches.
        cols = {(b.table, b.column) for b in cm.blocked_field_names}
        return cls(
            traits=traits,
            functions=policy_for(traits, tuple(cm.functions.allow), tuple(cm.functions.deny)),
            block_introspection=cm.cedar_policies.block_introspection,
            max_depth=cm.cedar_policies.max_depth,
            max_joins=cm.max_joins,
            max_fields=cm.cedar_policies.max_fields,
            max_complexity=cm.max_complexity,
            max_rows=cm.max_rows,
            allow_writes=cm.allow_writes,
            allow_deletes=cm.allow_deletes,
            extra_blocked_tables=frozenset(b.table for b in cm.blocked_table_names),
            extra_blocked_columns=frozenset(cols),
        )

    @property
    def catalog_schemas(self) -> frozenset[str]:
        return CATALOG_SCHEMAS | self.traits.system_schemas

    def table_blocked(self, snapshot: SchemaSnapshot, name: str) -> bool:
        return snapshot.is_table_blocked(name) or name in self.extra_blocked_tables

    def column_blocked(self, snapshot: SchemaSnapshot, table: str, column: str) -> bool:
        return (
            snapshot.is_column_blocked(table, column)
            or (table, column) in self.extra_blocked_columns
            or table in self.extra_blocked_tables
        )


@dataclass(slots=True)
class RuleContext:
    """One resolved statement, as every rule sees it.

    The first block of fields is input, fixed before the first rule runs. The second block
    holds facts a rule records for later rules and for the Analysis; which rule writes which
    is part of the documented order (docs/analyzer-rules.md).
    """

    code: str
    root: exp.Expr
    snapshot: SchemaSnapshot
    rules: RuleSet
    inventory: Inventory
    refs: References
    blocks: list[Block]
    complexity: Complexity

    # Set by blocked_tables: the known base tables read (snapshot keys); whether a system
    # catalog is read at all (refused or, with introspection allowed, let through).
    tables: set[str] = field(default_factory=set)
    catalog: bool = False
    # Set by blocked_columns: the sorted "table.column" reads that are allowed.
    columns: list[str] = field(default_factory=list)
    # Set by functions: the allowed function names called.
    functions: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        code: str,
        root: exp.Expr,
        snapshot: SchemaSnapshot,
        rules: RuleSet,
        inventory: Inventory,
        traits: EngineTraits | None = None,
    ) -> RuleContext:
        """Resolve ``root`` and weigh it: everything the rules read. ``traits``: the binding rules
        to resolve with, when not the rule set's engine's own."""
        refs = resolve(root, snapshot, inventory, traits or rules.traits)
        blocks = query_blocks(inventory)
        return cls(code, root, snapshot, rules, inventory, refs, blocks, measure(inventory, refs, blocks))


def add_once(
    out: list[Violation],
    seen: set[tuple[str, str]],
    code: str,
    key: str,
    msg: str,
    hint: str | None = None,
) -> None:
    """Append a violation unless one with the same code was already reported for ``key``."""
    if (code, key) in seen:
        return
    seen.add((code, key))
    out.append(violation(code, msg, hint))
