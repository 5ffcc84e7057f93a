"""SQL Server showplan XML (versions 1.0-1.6xx, SQL Server 2005-2022+) -> the engine-neutral plan tree.

Elements are matched by local name, so every showplan schema version reads the same way. The document
is walked once: statements structurally (batches, IF/ELSE branches, cursor operations, UDF and
procedure bodies), operators with one C-level ``iter`` over RelOps whose parents are found by walking
up a few levels, never with XPath per node. Engine-only attributes are kept in ``properties`` under
their showplan attribute names.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from lxml import etree

from planmon.errors import PlanParseError
from planmon.plans.hygiene import DEFAULT_MAX_DEPTH, DEFAULT_MAX_PLAN_BYTES
from planmon.plans.model import (
    MemoryGrant,
    MissingIndex,
    ObjectRef,
    Parameter,
    Plan,
    PlanNode,
    PlanStatement,
    PlanWarning,
    Predicate,
    ThreadRuntime,
    WaitStat,
)
from planmon.plans.normalize import strip_literals
from planmon.plans.xmlsafe import parse_xml

Element = etree._Element
_log = logging.getLogger(__name__)

__all__ = ["parse", "strip_brackets"]

# Statement attributes with a neutral field; every other statement attribute lands in properties.
_STATEMENT_FIELDS = frozenset(
    {
        "StatementText",
        "StatementType",
        "QueryHash",
        "QueryPlanHash",
        "StatementSubTreeCost",
        "StatementEstRows",
        "StatementOptmLevel",
        "StatementOptmEarlyAbortReason",
        "CardinalityEstimationModelVersion",
    }
)
_QUERY_PLAN_FIELDS = frozenset(
    {"DegreeOfParallelism", "NonParallelPlanReason", "CompileCPU", "CompileMemory"}
)
# RelOp attributes kept in node properties (the rest have neutral fields or are noise like AvgRowSize).
_RELOP_PROPERTIES = (
    "EstimatedExecutionMode",
    "EstimatedRowsRead",
    "EstimateRowsWithoutRowGoal",
    "TableCardinality",
    "IsAdaptive",
    "AdaptiveThresholdRows",
    "EstimatedJoinType",
    "Partitioned",
)
# Showplan booleans are "true"/"false" since 1.1 and "1"/"0" in 1.0; these attributes are known booleans.
_BOOLEAN_ATTRIBUTES = frozenset(
    {
        "Parallel",
        "IsAdaptive",
        "Partitioned",
        "Lookup",
        "Ordered",
        "ForcedIndex",
        "ForceSeek",
        "ForceScan",
        "ForceSeekColumnCount",
        "NoExpandHint",
        "WithOrderedPrefetch",
        "WithUnorderedPrefetch",
        "Optimized",
        "ManyToMany",
        "BitmapCreator",
        "StartupExpression",
        "IsClrFunction",
        "Filtered",
        "RetrievedFromCache",
        "SecurityPolicyApplied",
        "BatchModeOnRowStoreUsed",
        "ContainsInlineScalarTsqlUdfs",
        "ContainsInterleavedExecutionCandidates",
        "UsePlan",
        "IsInterleavedExecuted",
    }
)
# Per-thread run-time counters summed into node properties (the main ones have neutral fields).
# (Kept short on purpose: this runs for every thread of every operator, thousands of times per plan.)
_SUMMED_COUNTERS = (
    "ActualRowsRead",
    "ActualPhysicalReads",
    "ActualReadAheads",
    "ActualScans",
    "ActualRebinds",
    "ActualRewinds",
    "SegmentReads",
    "SegmentSkips",
)
_ROWS = operator.attrgetter("rows")
_EXECUTIONS = operator.attrgetter("executions")
_ELAPSED = operator.attrgetter("elapsed_ms")
_CPU = operator.attrgetter("cpu_ms")
_READS = operator.attrgetter("logical_reads")
_THREAD_TEXT_COUNTERS = ("ActualExecutionMode", "ActualJoinType", "IsInterleavedExecuted")
_WARNING_FLAGS = ("NoJoinPredicate", "SpatialGuess", "UnmatchedIndexes", "FullUpdateForOnlineIndexBuild")
_WARNING_TEXT = {
    "NoJoinPredicate": "join without a join predicate (a cross product)",
    "SpatialGuess": "spatial index selectivity was guessed",
    "UnmatchedIndexes": "filtered indexes could not be used because of parameterization",
    "FullUpdateForOnlineIndexBuild": "full update forced by an online index build",
    "SpillToTempDb": "operator spilled to tempdb",
    "SpillOccurred": "a spill occurred",
    "SortSpillDetails": "sort spilled to tempdb",
    "HashSpillDetails": "hash spilled to tempdb",
    "ExchangeSpillDetails": "parallelism exchange spilled to tempdb",
    "ColumnsWithNoStatistics": "columns have no statistics",
    "ColumnsWithStaleStatistics": "columns have stale statistics",
    "PlanAffectingConvert": "type conversion may affect the plan",
    "MemoryGrantWarning": "memory grant warning",
    "Wait": "the query waited",
}
_SCAN_TYPES = {
    "EQ": "=",
    "GT": ">",
    "GE": ">=",
    "LT": "<",
    "LE": "<=",
    "NE": "<>",
    "IS": "IS",
    "ISNOT": "IS NOT",
}
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def parse(
    data: bytes | str,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_PLAN_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Plan:
    """Parse a showplan XML document (bytes in any encoding, or text) into a ``Plan``."""
    root = parse_xml(data, source=source, max_bytes=max_bytes, max_depth=max_depth)
    if _local(root.tag) != "ShowPlanXML":
        raise PlanParseError(
            f"the document is not showplan XML: its root element is <{_local(root.tag)}>",
            source=source,
            hint="pass the XML of a SQL Server execution plan (.sqlplan, query_plan column)",
        )
    statements = _read_statements(root)
    return Plan(
        engine="sqlserver",
        statements=statements,
        engine_version=root.get("Build"),
        format_version=root.get("Version"),
        source=source or "<bytes>",
    )


def strip_brackets(identifier: str | None) -> str | None:
    """``[dbo]`` -> ``dbo`` (``]]`` inside brackets is an escaped ``]``); other text is returned as is."""
    if identifier is None:
        return None
    if len(identifier) >= 2 and identifier[0] == "[" and identifier[-1] == "]":
        return identifier[1:-1].replace("]]", "]")
    return identifier


# --- statements ---------------------------------------------------------------------------------------


def _python_statements(root: Element) -> list[PlanStatement]:
    """Every statement of the document in document order (the reference of the compiled reader)."""
    return [_statement(spot, index) for index, spot in enumerate(_statement_spots(root))]


@dataclass(slots=True)
class _StatementSpot:
    """Where a statement sits: its element, the QueryPlan it owns (if any) and context properties."""

    element: Element
    query_plan: Element | None
    properties: dict[str, Any] = field(default_factory=dict)


def _statement_spots(root: Element) -> Iterator[_StatementSpot]:
    """Every statement of the document in document order, nested blocks flattened after their owner."""
    batches = [
        batch for sequence in _children(root, "BatchSequence") for batch in _children(sequence, "Batch")
    ]
    for batch_index, batch in enumerate(batches):
        context = {"Batch": batch_index}
        # a stack of (statements still to visit, context for them): IF/ELSE and UDF bodies nest
        pending: list[tuple[Iterator[Element], dict[str, Any]]] = [
            (iter(block), context) for block in reversed(_children(batch, "Statements"))
        ]
        while pending:
            statements, block_context = pending[-1]
            element = next(statements, None)
            if element is None:
                pending.pop()
                continue
            spots, nested = _expand_statement(element, block_context)
            yield from spots
            pending.extend((iter(block), nested_context) for block, nested_context in reversed(nested))


def _expand_statement(
    element: Element, context: dict[str, Any]
) -> tuple[list[_StatementSpot], list[tuple[Element, dict[str, Any]]]]:
    """The statements one Stmt* element yields, and the nested statement blocks to visit after it."""
    kind = _local(element.tag)
    if kind == "StmtCond":
        condition = _child(element, "Condition")
        query_plan = _child(condition, "QueryPlan") if condition is not None else None
        nested = _function_blocks(condition, context) if condition is not None else []
        for branch in ("Then", "Else"):
            branch_element = _child(element, branch)
            if branch_element is not None:
                branch_context = {**context, "Branch": branch}
                nested.extend((block, branch_context) for block in _children(branch_element, "Statements"))
        return [_StatementSpot(element, query_plan, dict(context))], nested
    if kind in ("StmtCursor", "StmtReceive"):
        return _operation_spots(element, context), []
    query_plan = _child(element, "QueryPlan")
    return [_StatementSpot(element, query_plan, dict(context))], _function_blocks(element, context)


def _function_blocks(element: Element, context: dict[str, Any]) -> list[tuple[Element, dict[str, Any]]]:
    """Statement blocks of the UDF and stored procedure bodies shown under a statement."""
    blocks: list[tuple[Element, dict[str, Any]]] = []
    for child in element:
        kind = _local(child.tag)
        if kind in ("UDF", "StoredProc"):
            nested_context = {**context, kind: strip_brackets(child.get("ProcName"))}
            blocks.extend((block, nested_context) for block in _children(child, "Statements"))
    return blocks


def _operation_spots(element: Element, context: dict[str, Any]) -> list[_StatementSpot]:
    """One statement per cursor (or RECEIVE) operation with a plan; one plan-less statement otherwise."""
    container = _child(element, "CursorPlan")
    if container is None:
        container = _child(element, "ReceivePlan")
    if container is None:
        return [_StatementSpot(element, None, dict(context))]
    base = {**context, **_attributes(container)}
    spots = []
    for operation in _children(container, "Operation"):
        properties = {**base, "CursorOperation": operation.get("OperationType")}
        spots.append(_StatementSpot(element, _child(operation, "QueryPlan"), properties))
    return spots or [_StatementSpot(element, None, base)]


_DEFAULT_TYPES = {
    "StmtCond": "COND",
    "StmtCursor": "CURSOR",
    "StmtUseDb": "USE DATABASE",
    "StmtReceive": "RECEIVE",
}


def _statement(spot: _StatementSpot, index: int) -> PlanStatement:
    """Build one PlanStatement from its Stmt* element and the QueryPlan it owns."""
    element = spot.element
    attributes = element.attrib
    statement = PlanStatement(
        index=index,
        text=attributes.get("StatementText"),
        statement_type=attributes.get("StatementType") or _DEFAULT_TYPES.get(_local(element.tag)),
        engine_query_hash=attributes.get("QueryHash"),
        engine_plan_hash=attributes.get("QueryPlanHash"),
        estimated_cost=_float(attributes.get("StatementSubTreeCost")),
        estimated_rows=_float(attributes.get("StatementEstRows")),
        optimizer_level=attributes.get("StatementOptmLevel"),
        early_abort_reason=attributes.get("StatementOptmEarlyAbortReason"),
        cardinality_estimator_version=attributes.get("CardinalityEstimationModelVersion"),
    )
    statement.properties["StatementKind"] = _local(element.tag)
    statement.properties.update(spot.properties)
    for name, value in _attributes(element).items():
        if name not in _STATEMENT_FIELDS:
            statement.properties[name] = value
    if "Database" in statement.properties:  # StmtUseDb
        statement.properties["Database"] = strip_brackets(attributes.get("Database"))
    dispatcher = _child(element, "Dispatcher")
    if dispatcher is not None:
        statement.properties["Dispatcher"] = _dispatcher(dispatcher)
    if spot.query_plan is not None:
        _apply_query_plan(statement, spot.query_plan)
    return statement


def _dispatcher(dispatcher: Element) -> list[dict[str, Any]]:
    """Parameter Sensitive Plan optimization (SQL Server 2022) predicates: boundaries and predicate text."""
    predicates = []
    for sensitive in _children(dispatcher, "ParameterSensitivePredicate"):
        entry: dict[str, Any] = _attributes(sensitive)
        predicate = _child(sensitive, "Predicate")
        text = _scalar_string(predicate) if predicate is not None else None
        if text is not None:
            entry["Predicate"] = strip_literals(text)
        predicates.append(entry)
    return predicates


# --- QueryPlan ----------------------------------------------------------------------------------------


def _apply_query_plan(statement: PlanStatement, query_plan: Element) -> None:
    """Statement-level facts of a QueryPlan element and its operator tree."""
    attributes = query_plan.attrib
    dop = attributes.get("DegreeOfParallelism")
    statement.dop = int(dop) if dop is not None and _INTEGER.fullmatch(dop) else None
    statement.non_parallel_reason = attributes.get("NonParallelPlanReason")
    statement.compile_cpu_ms = _float(attributes.get("CompileCPU"))
    statement.compile_memory_kb = _float(attributes.get("CompileMemory"))
    for name, value in _attributes(query_plan).items():
        if name not in _QUERY_PLAN_FIELDS:
            statement.properties[name] = value
    for child in query_plan:
        handler = _QUERY_PLAN_CHILDREN.get(_local(child.tag))
        if handler is not None:
            handler(statement, child)
    statement.root, has_runtime = _operator_tree(query_plan)
    statement.is_actual = statement.is_actual or has_runtime


def _memory_grant(statement: PlanStatement, element: Element) -> None:
    """MemoryGrantInfo -> MemoryGrant (KB); every attribute is also kept in properties."""
    attributes = element.attrib
    statement.memory_grant = MemoryGrant(
        requested_kb=_float(attributes.get("RequestedMemory")),
        granted_kb=_float(attributes.get("GrantedMemory")),
        max_used_kb=_float(attributes.get("MaxUsedMemory")),
        desired_kb=_float(attributes.get("DesiredMemory")),
        serial_required_kb=_float(attributes.get("SerialRequiredMemory")),
    )
    statement.properties["MemoryGrantInfo"] = _attributes(element)


def _query_time_stats(statement: PlanStatement, element: Element) -> None:
    """QueryTimeStats (ms): only actual plans carry it."""
    statement.query_cpu_ms = _float(element.get("CpuTime"))
    statement.query_elapsed_ms = _float(element.get("ElapsedTime"))
    statement.properties["QueryTimeStats"] = _attributes(element)
    statement.is_actual = True


def _wait_stats(statement: PlanStatement, element: Element) -> None:
    """WaitStats of an actual plan (SQL Server 2016 SP1+), one WaitStat per wait type."""
    for wait in _children(element, "Wait"):
        statement.waits.append(
            WaitStat(
                wait_type=wait.get("WaitType", ""),
                wait_ms=_float(wait.get("WaitTimeMs")) or 0.0,
                wait_count=_float(wait.get("WaitCount")) or 0.0,
            )
        )


def _parameter_list(statement: PlanStatement, element: Element) -> None:
    """ParameterList: compiled and runtime values exactly as SQL Server wrote them."""
    for column in _children(element, "ColumnReference"):
        statement.parameters.append(
            Parameter(
                name=column.get("Column", ""),
                data_type=column.get("ParameterDataType"),
                compiled_value=column.get("ParameterCompiledValue"),
                runtime_value=column.get("ParameterRuntimeValue"),
            )
        )


def _missing_indexes(statement: PlanStatement, element: Element) -> None:
    """MissingIndexGroup/MissingIndex: the group's Impact applies to each index in it."""
    for group in _children(element, "MissingIndexGroup"):
        impact = _float(group.get("Impact"))
        for index in _children(group, "MissingIndex"):
            statement.missing_indexes.append(_missing_index(index, impact))


def _missing_index(index: Element, impact: float | None) -> MissingIndex:
    """One MissingIndex with its EQUALITY / INEQUALITY / INCLUDE column groups."""
    columns: dict[str, list[str]] = {"EQUALITY": [], "INEQUALITY": [], "INCLUDE": []}
    for group in _children(index, "ColumnGroup"):
        names = [strip_brackets(column.get("Name")) or "" for column in _children(group, "Column")]
        columns.setdefault(group.get("Usage", ""), []).extend(names)
    return MissingIndex(
        table=strip_brackets(index.get("Table")) or "",
        impact=impact,
        schema=strip_brackets(index.get("Schema")),
        database=strip_brackets(index.get("Database")),
        equality_columns=tuple(columns["EQUALITY"]),
        inequality_columns=tuple(columns["INEQUALITY"]),
        include_columns=tuple(columns["INCLUDE"]),
    )


def _statement_warnings(statement: PlanStatement, element: Element) -> None:
    """QueryPlan/Warnings: statement-level engine warnings (converts, memory grant, ...)."""
    statement.warnings.extend(_warnings(element))


def _unmatched_indexes(statement: PlanStatement, element: Element) -> None:
    """Filtered indexes the optimizer could not match (QueryPlan/UnmatchedIndexes/Parameterization)."""
    statement.properties["UnmatchedIndexes"] = [
        _object_ref(obj).qualified for obj in element.iter("{*}Object") if obj.get("Table") is not None
    ]


def _properties_of(name: str) -> Callable[[PlanStatement, Element], None]:
    """A handler that stores an element's attributes under its own name in the statement properties."""

    def handler(statement: PlanStatement, element: Element) -> None:
        """Store the element's attributes under its name."""
        statement.properties[name] = _attributes(element)

    return handler


def _thread_stat(statement: PlanStatement, element: Element) -> None:
    """ThreadStat (threads reserved and used per NUMA node) into properties."""
    stat: dict[str, Any] = _attributes(element)
    stat["ThreadReservation"] = [_attributes(reservation) for reservation in element]
    statement.properties["ThreadStat"] = stat


def _stats_usage(statement: PlanStatement, element: Element) -> None:
    """Statistics the optimizer loaded (2017+): what changed between plans often starts here."""
    usage = []
    for info in _children(element, "StatisticsInfo"):
        entry = _attributes(info)
        for name in ("Database", "Schema", "Table", "Statistics"):
            if name in entry:
                entry[name] = strip_brackets(str(entry[name]))
        usage.append(entry)
    statement.properties["OptimizerStatsUsage"] = usage


def _trace_flags(statement: PlanStatement, element: Element) -> None:
    """Trace flags active at compile or run time, into properties."""
    flags = statement.properties.setdefault("TraceFlags", [])
    for flag in _children(element, "TraceFlag"):
        flags.append({"Value": _value("Value", flag.get("Value", "")), "Scope": flag.get("Scope")})


_QUERY_PLAN_CHILDREN: dict[str, Callable[[PlanStatement, Element], None]] = {
    "MemoryGrantInfo": _memory_grant,
    "QueryTimeStats": _query_time_stats,
    "WaitStats": _wait_stats,
    "ParameterList": _parameter_list,
    "MissingIndexes": _missing_indexes,
    "Warnings": _statement_warnings,
    "UnmatchedIndexes": _unmatched_indexes,
    "OptimizerHardwareDependentProperties": _properties_of("OptimizerHardwareDependentProperties"),
    "ThreadStat": _thread_stat,
    "OptimizerStatsUsage": _stats_usage,
    "TraceFlags": _trace_flags,
}


# --- operators ----------------------------------------------------------------------------------------


def _operator_tree(query_plan: Element) -> tuple[PlanNode | None, bool]:
    """Build the RelOp tree of a QueryPlan in one pass; say whether any operator has run-time counters.

    ``iter`` yields RelOps in document order, so a parent is always built before its children; the
    parent is the nearest RelOp ancestor (operators nest RelOp > operator element > ... > RelOp).
    """
    nodes: dict[Element, PlanNode] = {}
    root: PlanNode | None = None
    has_runtime = False
    for element in query_plan.iter("{*}RelOp", "{*}UserDefinedFunction"):
        owner = _owning_relop(element, query_plan)
        if _local(element.tag) == "UserDefinedFunction":
            if owner is not None and owner in nodes:
                _note_udf(nodes[owner], element)
            continue
        node, node_has_runtime = _node(element)
        has_runtime = has_runtime or node_has_runtime
        nodes[element] = node
        if owner is not None and owner in nodes:
            nodes[owner].children.append(node)
        elif root is None:
            root = node
    return root, has_runtime


def _owning_relop(element: Element, stop: Element) -> Element | None:
    """The nearest RelOp above ``element`` inside ``stop`` (the QueryPlan), or None at the top."""
    parent = element.getparent()
    while parent is not None and parent is not stop:
        if _local(parent.tag) == "RelOp":
            return parent
        parent = parent.getparent()
    return None


def _note_udf(node: PlanNode, element: Element) -> None:
    """Record a scalar user-defined function called by this operator (T-SQL or CLR)."""
    name = element.get("FunctionName", "")
    node.properties.setdefault("ScalarUDF", []).append(name)
    if _boolean(element.get("IsClrFunction")):
        node.properties["ClrFunction"] = True


def _node(relop: Element) -> tuple[PlanNode, bool]:
    """One PlanNode from a RelOp element (its own children only; child RelOps are linked by the caller)."""
    get = relop.get  # single lookups: cheaper than copying all ~20 attributes of a RelOp
    rebinds = _float(get("EstimateRebinds"))
    rewinds = _float(get("EstimateRewinds"))
    node_id = get("NodeId", "-1")
    node = PlanNode(
        node_id=int(node_id) if _INTEGER.fullmatch(node_id) else -1,
        physical_op=get("PhysicalOp", ""),
        logical_op=get("LogicalOp"),
        estimated_rows=_float(get("EstimateRows")),
        estimated_cost=_float(get("EstimatedTotalSubtreeCost")),
        estimated_io=_float(get("EstimateIO")),
        estimated_cpu=_float(get("EstimateCPU")),
        # one first execution plus the estimated re-executions (rebinds: new outer values, rewinds: same)
        estimated_executions=None
        if rebinds is None and rewinds is None
        else 1.0 + (rebinds or 0.0) + (rewinds or 0.0),
        parallel=_boolean(get("Parallel")),
    )
    for name in _RELOP_PROPERTIES:
        value = get(name)
        if value is not None:
            node.properties[name] = _value(name, value)
    has_runtime = False
    for child in relop:
        kind = _local(child.tag)
        if kind == "RunTimeInformation":
            _apply_runtime(node, child)
            has_runtime = True
        elif kind == "Warnings":
            node.warnings.extend(_warnings(child))
        elif kind == "MemoryFractions":
            node.properties["MemoryFractions"] = _attributes(child)
        elif kind not in ("OutputList", "RunTimePartitionSummary", "InternalInfo"):
            _apply_operator(node, child)
    return node, has_runtime


def _apply_runtime(node: PlanNode, runtime: Element) -> None:
    """Keep every RunTimeCountersPerThread row and total them into the node's actual_* fields.

    Rows, executions, CPU and reads add up over threads. Elapsed time is the maximum over threads:
    threads run at the same time, so the slowest one is the operator's wall-clock time. (In row mode
    an operator's elapsed time includes its children's; in batch mode it is the operator's own.)
    """
    rows = list(runtime.iterchildren("{*}RunTimeCountersPerThread"))
    # every thread of an operator carries the same set of counters: look at the first row only
    present = set(rows[0].keys()) if rows else set()
    extras = [name for name in _SUMMED_COUNTERS if name in present]
    totals = dict.fromkeys(extras, 0.0)
    try:
        threads = [_thread_runtime(row, extras, totals) for row in rows]
    except ValueError as exc:
        raise PlanParseError(
            f"operator {node.node_id} has a run-time counter that is not a number ({exc})",
            hint="the plan was edited or damaged; capture it again from SQL Server",
        ) from exc
    for name in _THREAD_TEXT_COUNTERS:
        if name in present:
            node.properties[name] = _value(name, rows[0].get(name, ""))
    node.per_thread = threads
    # map + attrgetter keep these totals in C: they run over thousands of threads per plan
    node.actual_rows = sum(map(_ROWS, threads))
    node.actual_executions = sum(map(_EXECUTIONS, threads))
    node.actual_elapsed_ms = _max_known(map(_ELAPSED, threads))
    node.actual_cpu_ms = _sum_known(map(_CPU, threads))
    node.actual_logical_reads = _sum_known(map(_READS, threads))
    node.properties.update(totals)


def _thread_runtime(row: Element, extras: list[str], totals: dict[str, float]) -> ThreadRuntime:
    """One thread's counters; the secondary ones are added to ``totals``. Hot path: thousands per plan."""
    get = row.get
    for name in extras:
        value = get(name)
        if value is not None:
            totals[name] += float(value)
    elapsed, cpu, reads = get("ActualElapsedms"), get("ActualCPUms"), get("ActualLogicalReads")
    return ThreadRuntime(
        int(get("Thread") or 0),
        float(get("ActualRows") or 0),
        float(get("ActualExecutions") or 0),
        None if elapsed is None else float(elapsed),
        None if cpu is None else float(cpu),
        None if reads is None else float(reads),
    )


def _apply_operator(node: PlanNode, element: Element) -> None:
    """Read the operator element (IndexScan, Hash, NestedLoops, ...): its attributes, object, predicates."""
    node.properties["Operator"] = _local(element.tag)
    for name, value in _items(element):
        node.properties[name] = _value(name, value)
    objects: list[ObjectRef] = []
    hash_keys: dict[str, list[str]] = {}
    for child in element:
        kind = _local(child.tag)
        reader = _PREDICATE_READERS.get(kind)
        if reader is not None:
            node.predicates.extend(reader(node, child))
        elif kind == "Object":
            _collect_object(node, child, objects)
        elif kind in _KEY_LISTS:
            hash_keys[kind] = [_column_text(column) for column in _children(child, "ColumnReference")]
    if objects:
        node.object = objects[0]
        if len(objects) > 1:
            node.properties["Objects"] = [obj.qualified for obj in objects]
    if hash_keys:
        node.predicates.extend(_key_predicates(hash_keys))


def _collect_object(node: PlanNode, element: Element, objects: list[ObjectRef]) -> None:
    """Add the operator's Object (table, index) and flag table variables and temporary tables."""
    if element.get("Table") is None:
        return
    obj = _object_ref(element)
    objects.append(obj)
    if obj.table.startswith("@"):
        node.properties["TableVariable"] = True
    elif obj.table.startswith("#"):
        node.properties["TempTable"] = True
    for name in ("Storage", "Filtered"):
        value = element.get(name)
        if value is not None:
            node.properties.setdefault(name, _value(name, value))


def _object_ref(element: Element) -> ObjectRef:
    """An Object element as ObjectRef, brackets stripped from every identifier."""
    attributes = element.attrib
    return ObjectRef(
        table=strip_brackets(attributes.get("Table")) or "",
        schema=strip_brackets(attributes.get("Schema")),
        database=strip_brackets(attributes.get("Database")),
        index=strip_brackets(attributes.get("Index")),
        alias=strip_brackets(attributes.get("Alias")),
        index_kind=attributes.get("IndexKind"),
    )


# --- predicates ---------------------------------------------------------------------------------------


def _scalar_predicate(kind: str) -> Callable[[PlanNode, Element], list[Predicate]]:
    """A reader for elements holding one ScalarOperator (Predicate, ProbeResidual, Residual, PassThru)."""

    def read(node: PlanNode, element: Element) -> list[Predicate]:
        """Predicate from the element's ScalarString, literals stripped."""
        text = _scalar_string(element)
        if text is None:
            return []
        # a Nested Loops predicate is evaluated per pair of rows: it is the join condition
        actual_kind = "join" if kind == "filter" and node.physical_op == "Nested Loops" else kind
        return [Predicate(kind=actual_kind, text=strip_literals(text))]

    return read


def _seek_predicates(node: PlanNode, element: Element) -> list[Predicate]:
    """One ``seek`` predicate per SeekPredicate(New|Part) of a SeekPredicates element."""
    del node  # same signature as the other predicate readers
    return [predicate for seek in element for predicate in _single_seek(None, seek)]


def _single_seek(node: PlanNode | None, seek: Element) -> list[Predicate]:
    """A seek predicate written like SSMS shows seek keys (also found bare under Spool and SimpleUpdate)."""
    del node
    parts = [_seek_range(seek_range) for seek_range in seek.iter("{*}Prefix", "{*}StartRange", "{*}EndRange")]
    text = " AND ".join(part for part in parts if part)
    return [Predicate(kind="seek", text=strip_literals(text))] if text else []


def _seek_range(seek_range: Element) -> str:
    """``col1 = expr1 AND col2 = expr2`` for a Prefix/StartRange/EndRange of a seek."""
    operator = _SCAN_TYPES.get(seek_range.get("ScanType", ""), seek_range.get("ScanType", "?"))
    columns: list[str] = []
    expressions: list[str] = []
    for child in seek_range:
        kind = _local(child.tag)
        if kind == "RangeColumns":
            columns.extend(_column_text(column) for column in _children(child, "ColumnReference"))
        elif kind == "RangeExpressions":
            expressions.extend(
                operand.get("ScalarString", "?") for operand in _children(child, "ScalarOperator")
            )
    pairs = zip(columns, expressions + ["?"] * (len(columns) - len(expressions)), strict=False)
    return " AND ".join(f"{column} {operator} {expression}" for column, expression in pairs)


_PREDICATE_READERS: dict[str, Callable[[PlanNode, Element], list[Predicate]]] = {
    "Predicate": _scalar_predicate("filter"),
    "SeekPredicates": _seek_predicates,
    "SeekPredicateNew": _single_seek,
    "SeekPredicate": _single_seek,
    "BuildResidual": _scalar_predicate("residual"),
    "ProbeResidual": _scalar_predicate("residual"),
    "Residual": _scalar_predicate("residual"),
    "PassThru": _scalar_predicate("pass_thru"),
}
_KEY_LISTS = frozenset({"HashKeysBuild", "HashKeysProbe", "OuterSideJoinColumns", "InnerSideJoinColumns"})


def _key_predicates(keys: dict[str, list[str]]) -> list[Predicate]:
    """Hash build/probe keys and merge join columns as ``left = right`` pairs (kinds hash_keys, join)."""
    predicates = []
    for kind, left_name, right_name in (
        ("hash_keys", "HashKeysBuild", "HashKeysProbe"),
        ("join", "OuterSideJoinColumns", "InnerSideJoinColumns"),
    ):
        left, right = keys.get(left_name, []), keys.get(right_name, [])
        if not left and not right:
            continue
        if len(left) == len(right):
            text = " AND ".join(f"{a} = {b}" for a, b in zip(left, right, strict=True))
        else:
            text = f"{left_name}({', '.join(left)}) {right_name}({', '.join(right)})"
        predicates.append(Predicate(kind=kind, text=text))
    return predicates


def _scalar_string(element: Element) -> str | None:
    """The ScalarString of the ScalarOperator directly under ``element`` (None when absent)."""
    for child in element:
        if _local(child.tag) == "ScalarOperator":
            return child.get("ScalarString")
    return None


def _column_text(column: Element) -> str:
    """A column the way ScalarString writes it: ``[db].[schema].[table].[col] as [alias].[col]``."""
    attributes = dict(_items(column))
    name = attributes.get("Column", "")
    bracketed = name if name.startswith("[") else f"[{name}]"
    owner = [attributes[part] for part in ("Database", "Schema", "Table") if part in attributes]
    text = ".".join([*owner, bracketed])
    alias = attributes.get("Alias")
    return f"{text} as {alias}.{bracketed}" if alias else text


# --- warnings -----------------------------------------------------------------------------------------


def _warnings(element: Element) -> list[PlanWarning]:
    """Every warning of a <Warnings> element: flag attributes and child elements, unknown ones too."""
    warnings = [
        PlanWarning(kind=flag, message=_WARNING_TEXT[flag])
        for flag in _WARNING_FLAGS
        if _boolean(element.get(flag))
    ]
    for child in element:
        kind = _local(child.tag)
        details: dict[str, Any] = _attributes(child)
        columns = [_column_text(column) for column in _children(child, "ColumnReference")]
        if columns:
            details["columns"] = columns
        warnings.append(PlanWarning(kind=kind, message=_warning_message(kind, details), details=details))
    return warnings


def _warning_message(kind: str, details: dict[str, Any]) -> str:
    """A one-line description of a warning with its most telling detail."""
    text = _WARNING_TEXT.get(kind, kind)
    if kind == "PlanAffectingConvert":
        expression = strip_literals(str(details.get("Expression", "")))
        return f"type conversion in {expression} may affect {details.get('ConvertIssue', 'the plan')}"
    if kind == "MemoryGrantWarning":
        return f"memory grant warning: {details.get('GrantWarningKind', 'unknown')}"
    if kind in ("ColumnsWithNoStatistics", "ColumnsWithStaleStatistics"):
        return f"{text}: {', '.join(details.get('columns', []))}"
    if kind == "SpillToTempDb" and "SpillLevel" in details:
        return f"{text} (spill level {details['SpillLevel']})"
    if kind == "Wait":
        return (
            f"the query waited {details.get('WaitTime', '?')} s for {details.get('WaitType', 'a resource')}"
        )
    return text


# --- small helpers ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _local(tag: object) -> str:
    """Local name of an element tag, whatever its namespace; cached: a plan has only a few hundred tags."""
    text = tag if isinstance(tag, str) else ""
    return text.rpartition("}")[2]


def _child(element: Element, name: str) -> Element | None:
    """The first direct child with local name ``name`` (None when absent)."""
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: Element, name: str) -> list[Element]:
    """Direct children with local name ``name``, in document order."""
    return [child for child in element if _local(child.tag) == name]


def _python_attributes(element: Element) -> dict[str, Any]:
    """An element's attributes with integers and known booleans converted (the rest stay text)."""
    return {name: _value(name, value) for name, value in _items(element)}


def _items(element: Element) -> list[tuple[str, str]]:
    """An element's attributes as text pairs (lxml returns str for parsed documents; the stubs are wider)."""
    return cast("list[tuple[str, str]]", element.items())


def _value(name: str, value: str) -> Any:
    """Attribute text as int, float, bool (for known boolean attributes) or the text itself."""
    if name in _BOOLEAN_ATTRIBUTES and value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    if value.isdecimal():  # not isdigit: "²" is a digit that int() refuses
        return int(value)
    first = value[:1]
    if not (first.isdigit() or first in "-."):  # cheap test first: most text values are words
        return value
    if _INTEGER.fullmatch(value):
        return int(value)
    if _DECIMAL.fullmatch(value):
        return float(value)
    return value


def _float(value: str | None) -> float | None:
    """Showplan numbers (``1.5e-006`` style included); None when absent or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:  # e.g. "1.#INF" from very old builds: treat as unknown, not as a parse failure
        return None


def _boolean(value: str | None) -> bool:
    """Showplan boolean text (``true``/``1``) as bool; absent means false."""
    return value in ("true", "1", "True")


def _max_known(values: Iterator[float | None]) -> float | None:
    """Largest of the values that are known, None when none is."""
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _sum_known(values: Iterator[float | None]) -> float | None:
    """Sum of the values that are known, None when none is."""
    known = [value for value in values if value is not None]
    return sum(known) if known else None


# --- the compiled reader ------------------------------------------------------------------------------
#
# ``_showplan_ops.pyx`` does in C what ``_python_statements`` (with everything it calls) and
# ``_python_attributes`` do (ADR 0004). ``parse`` calls ``_read_statements`` and the readers call
# ``_attributes``: the compiled functions when a current build is there, the Python ones otherwise.


_COMPILED_SOURCE = Path(__file__).with_name("_showplan_ops.pyx")


def _load_compiled(source: Path = _COMPILED_SOURCE, lxml_version: str = etree.__version__) -> Any:
    """The compiled reader module, or None to use the Python reader.

    It is used only when it was built from ``source`` as it is now and against the lxml running now; a
    stale or missing build is not an error: results are the same, only slower (``make install``
    rebuilds it).
    """
    try:
        from planmon.plans import _showplan_ops  # type: ignore[attr-defined]
    except ModuleNotFoundError:  # not built: no C compiler at install time
        return None
    except Exception as exc:  # built for another model or lxml ABI: the Python reader gives the same
        _log.warning("the compiled showplan reader cannot be used (%s): using the Python reader", exc)
        return None
    if source.is_file() and hashlib.sha256(source.read_bytes()).hexdigest() != _showplan_ops.SOURCE_SHA256:
        _log.warning("the compiled showplan reader is older than %s: using the Python reader", source.name)
        return None
    if lxml_version != _showplan_ops.BUILT_AGAINST_LXML:
        _log.warning(
            "the compiled showplan reader was built for lxml %s, not %s: using the Python reader",
            _showplan_ops.BUILT_AGAINST_LXML,
            lxml_version,
        )
        return None
    return _showplan_ops


_COMPILED = _load_compiled()
COMPILED_READER = _COMPILED is not None  # reported by bench/parse_corpus.py
_read_statements: Callable[[Element], list[PlanStatement]] = (
    _COMPILED.statements if _COMPILED is not None else _python_statements
)
_attributes: Callable[[Element], dict[str, Any]] = (
    _COMPILED.element_attributes if _COMPILED is not None else _python_attributes
)


@contextlib.contextmanager
def python_reader() -> Iterator[None]:
    """Within the block, parse with the pure-Python reader (for the tests that compare it with the
    compiled one and for the benchmark; it swaps module globals, so it is not for threaded use)."""
    global _read_statements, _attributes
    saved = _read_statements, _attributes
    _read_statements, _attributes = _python_statements, _python_attributes
    try:
        yield
    finally:
        _read_statements, _attributes = saved
