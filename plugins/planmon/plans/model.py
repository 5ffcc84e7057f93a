"""One engine-neutral plan tree for SQL Server, PostgreSQL and MySQL/MariaDB plans.

Parsers (``showplan``, ``postgres``, ``mysql``) build these objects; fingerprint, diff and rules read
them and never look at engine-specific documents. Engine-only details that no neutral field covers
go into ``properties`` with the engine's own attribute name, so nothing read is thrown away.

Units are fixed so that plans of one engine compare with each other:
- rows and executions are counts (floats: estimates are fractional),
- times are milliseconds, memory is kilobytes,
- costs are the engine's own optimizer units (not comparable across engines).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Engine = Literal["sqlserver", "postgres", "mysql"]
ENGINES: tuple[Engine, ...] = ("sqlserver", "postgres", "mysql")


class Severity(enum.IntEnum):
    """How much a finding matters; ordered so ``max()`` picks the worst."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A table (and the index used on it, when there is one) that an operator reads or writes."""

    table: str
    schema: str | None = None
    database: str | None = None
    index: str | None = None
    alias: str | None = None
    # e.g. "Clustered", "NonClustered", "Heap", "ViewClustered", "btree", "PRIMARY"; engine wording
    index_kind: str | None = None

    @property
    def qualified_table(self) -> str:
        """``database.schema.table`` with the parts that are known, brackets and quotes removed."""
        return ".".join(part for part in (self.database, self.schema, self.table) if part)

    @property
    def qualified(self) -> str:
        """``database.schema.table.index`` with the parts that are known."""
        return ".".join(part for part in (self.qualified_table, self.index) if part)


@dataclass(frozen=True, slots=True)
class Predicate:
    """A predicate on an operator. ``text`` has literals replaced by ``?`` (see ``normalize``)."""

    kind: str  # "seek", "filter", "join", "index_cond", "recheck", "hash_keys", "residual", ...
    text: str


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """A warning the engine itself wrote into the plan (SQL Server <Warnings>, MySQL notes, ...)."""

    kind: str  # engine wording, e.g. "SpillToTempDb", "PlanAffectingConvert", "NoJoinPredicate"
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThreadRuntime:
    """Actual run-time counters of one operator on one thread (SQL Server RunTimeCountersPerThread)."""

    thread: int
    rows: float
    executions: float
    elapsed_ms: float | None = None
    cpu_ms: float | None = None
    logical_reads: float | None = None


@dataclass(slots=True)
class PlanNode:
    """One operator of a plan."""

    node_id: int
    physical_op: str
    logical_op: str | None = None
    object: ObjectRef | None = None
    # Estimates: rows per execution, subtree cost (the engine's total cost for this node and below)
    estimated_rows: float | None = None
    estimated_cost: float | None = None
    estimated_io: float | None = None
    estimated_cpu: float | None = None
    estimated_executions: float | None = None
    # Actuals (actual/ANALYZE plans only): totals over all executions and threads
    actual_rows: float | None = None
    actual_executions: float | None = None
    actual_elapsed_ms: float | None = None
    actual_cpu_ms: float | None = None
    actual_logical_reads: float | None = None
    per_thread: list[ThreadRuntime] = field(default_factory=list)
    parallel: bool = False
    predicates: list[Predicate] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    children: list[PlanNode] = field(default_factory=list)

    def walk(self) -> Iterator[PlanNode]:
        """This node and every node below it, depth first, parents before children."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            if node.children:  # about half the nodes are leaves: skip the empty extend
                stack.extend(reversed(node.children))

    @property
    def actual_rows_per_execution(self) -> float | None:
        if self.actual_rows is None:
            return None
        executions = self.actual_executions or 1.0
        return self.actual_rows / executions


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter with the value the plan was compiled for and the value it ran with."""

    name: str
    data_type: str | None = None
    compiled_value: str | None = None
    runtime_value: str | None = None


@dataclass(frozen=True, slots=True)
class MissingIndex:
    """An index the optimizer says would help, with its estimated impact in percent."""

    table: str
    impact: float | None = None
    schema: str | None = None
    database: str | None = None
    equality_columns: tuple[str, ...] = ()
    inequality_columns: tuple[str, ...] = ()
    include_columns: tuple[str, ...] = ()

    @property
    def qualified_table(self) -> str:
        return ".".join(part for part in (self.database, self.schema, self.table) if part)


@dataclass(frozen=True, slots=True)
class MemoryGrant:
    """Query memory grant in KB (SQL Server MemoryGrantInfo; other engines leave it unset)."""

    requested_kb: float | None = None
    granted_kb: float | None = None
    used_kb: float | None = None
    desired_kb: float | None = None
    max_used_kb: float | None = None
    serial_required_kb: float | None = None


@dataclass(frozen=True, slots=True)
class WaitStat:
    wait_type: str
    wait_ms: float
    wait_count: float


@dataclass(slots=True)
class PlanStatement:
    """One statement of a plan document, with its operator tree (``root``; None when it has none)."""

    index: int  # 0-based position in the document
    text: str | None = None
    statement_type: str | None = None  # SELECT, INSERT, COND, CURSOR, USE, ...
    root: PlanNode | None = None
    is_actual: bool = False
    engine_query_hash: str | None = None  # SQL Server QueryHash, PostgreSQL queryid, MySQL digest
    engine_plan_hash: str | None = None  # SQL Server QueryPlanHash
    estimated_cost: float | None = None
    estimated_rows: float | None = None
    optimizer_level: str | None = None  # TRIVIAL / FULL
    early_abort_reason: str | None = None  # TimeOut, MemoryLimitExceeded, GoodEnoughPlanFound
    non_parallel_reason: str | None = None
    dop: int | None = None
    cardinality_estimator_version: str | None = None
    memory_grant: MemoryGrant | None = None
    compile_cpu_ms: float | None = None
    compile_memory_kb: float | None = None
    query_cpu_ms: float | None = None  # QueryTimeStats / EXPLAIN ANALYZE execution time
    query_elapsed_ms: float | None = None
    planning_ms: float | None = None
    waits: list[WaitStat] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    missing_indexes: list[MissingIndex] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)  # statement-level engine warnings
    properties: dict[str, Any] = field(default_factory=dict)

    def nodes(self) -> Iterator[PlanNode]:
        """Every operator of the statement, parents before children."""
        return self.root.walk() if self.root is not None else iter(())

    @property
    def operator_count(self) -> int:
        return sum(1 for _ in self.nodes())


@dataclass(slots=True)
class Plan:
    """A whole plan document: one or more statements from one engine."""

    engine: Engine
    statements: list[PlanStatement]
    engine_version: str | None = None  # e.g. SQL Server build "15.0.2000.5", showplan "1.564"
    format_version: str | None = None
    source: str | None = None  # file name or "<bytes>"


@dataclass(frozen=True, slots=True)
class Finding:
    """An anti-pattern found in a plan: a stable ``id``, how bad, where, why, and the numbers."""

    id: str
    severity: Severity
    message: str
    node_id: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "node": self.node_id,
            "message": self.message,
            "evidence": self.evidence,
        }
