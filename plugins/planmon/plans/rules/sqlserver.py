"""Anti-pattern rules for SQL Server plans: the warnings the engine wrote, then rules that read the tree.

Every finding has a stable ``id`` (alerting deduplicates on it), a severity, the operator it points at
and the numbers behind it. Thresholds carry the reason for their value: the users of tools like this
mostly complain about false positives, so each rule fires only where a DBA would act.
Row-estimate mismatch is engine-neutral and lives in ``rules/common.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from planmon.plans.model import Finding, PlanNode, PlanStatement, PlanWarning, Severity
from planmon.plans.normalize import strip_literals

__all__ = ["RULE_IDS", "find"]

# --- thresholds (each with the reason for its value) ---------------------------------------------------

# Optimizer cost units are "seconds on a 1990s reference machine"; a statement under 0.1 units runs in
# about a millisecond, so what share of it a lookup takes does not matter to anyone.
MIN_STATEMENT_COST_FOR_SHARES = 0.1
# A lookup at half the statement's cost or more is the cost of the query: a covering index (or fewer
# columns) removes most of it. sp_BlitzCache flags expensive key lookups at the same 50 %.
KEY_LOOKUP_COST_SHARE = 0.5
# The optimizer's missing-index "Impact" is its estimate of the cost reduction in percent, and it is
# optimistic. At 50 % or more the statement would cost at most half: worth a DBA's look; below that it
# is reported for information only (often an existing index needs one more column).
MISSING_INDEX_WARNING_IMPACT = 50.0
# Spills: pages of 8 KB written to tempdb. 64,000 pages = 500 MB, the size at which plan-cache tools
# treat a spill as severe (sp_BlitzCache uses 500 MB); smaller spills are still warnings.
SPILL_CRITICAL_PAGES = 64_000
# Unused memory grant: granted memory reserved but less than a tenth used means the estimate sizing it
# was off by an order of magnitude; only grants of 256 MB or more matter, since smaller ones rarely
# make other queries wait on RESOURCE_SEMAPHORE.
UNUSED_GRANT_MIN_KB = 256 * 1024
UNUSED_GRANT_MAX_USED_FRACTION = 0.10
# Default "cost threshold for parallelism" is 5: below it SQL Server would not consider a parallel plan
# anyway, so a serialising construct costs nothing there and is reported as information only.
PARALLEL_COST_THRESHOLD = 5.0
# Parameter sniffing: a 10x miss between estimated and actual rows is where plan choices (join type,
# seek vs scan, memory grant) flip; below 1,000 rows on both sides a wrong estimate is cheap.
SNIFFING_ESTIMATE_RATIO = 10.0
SNIFFING_MIN_ROWS = 1_000.0
# Parallel skew: fewer than 10,000 rows take milliseconds however they are spread, so ignore them; a
# skew is when the busiest worker did at least half the rows and at least twice its fair share (at
# DOP 2 that means one worker did everything, since 50/50 would be perfect balance).
SKEW_MIN_ROWS = 10_000.0
SKEW_MIN_SHARE = 0.5
SKEW_FAIR_SHARE_FACTOR = 2.0
# An eager index spool below 10 % of the statement's cost is a cheap on-the-fly index: information only.
EAGER_SPOOL_WARNING_SHARE = 0.10
# Table variables: with 100+ actual rows and a 10x under-estimate, the fixed low estimate hurt the plan.
TABLE_VARIABLE_MIN_ROWS = 100.0
TABLE_VARIABLE_ESTIMATE_RATIO = 10.0

# NonParallelPlanReason values that point at something in the query or its objects. Left out on
# purpose: MaxDOPSetToOne (a deliberate setting or hint), EstimatedDOPIsOne (one scheduler),
# NoParallelPlansInDesktopOrExpressEdition, ParallelismDisabledByTraceFlag, NoParallelPlansDuringUpgrade
# and NoParallelForPDWCompilation: configuration, edition or transient states, not query defects.
SERIALIZING_REASONS = frozenset(
    {
        "CouldNotGenerateValidParallelPlan",
        "TSQLUserDefinedFunctionsNotParallelizable",
        "CLRUserDefinedFunctionRequiresDataAccess",
        "NonParallelizableIntrinsicFunction",
        "TableVariableTransactionsDoNotSupportParallelNestedTransaction",
        "DMLQueryReturnsOutputToClient",
        "UpdatingWritebackVariable",
        "NoParallelWithRemoteQuery",
        "NoParallelDynamicCursor",
        "NoParallelFastForwardCursor",
        "NoParallelCursorFetchByBookmark",
        "NoParallelForMemoryOptimizedTables",
        "NoParallelForDmlOnMemoryOptimizedTable",
        "NoParallelForNativelyCompiledModule",
        "NoParallelCreateIndexInNonEnterpriseEdition",
        "MixedSerialAndParallelOnlineIndexBuildNotSupported",
        "NoRangesResumableCreate",
    }
)

_SPILL_KINDS = frozenset(
    {"SpillToTempDb", "SpillOccurred", "HashSpillDetails", "SortSpillDetails", "ExchangeSpillDetails"}
)
# Engine warning kind -> (finding id, severity). Spills and converts are handled by their own rules.
_WARNING_FINDINGS: dict[str, tuple[str, Severity]] = {
    "NoJoinPredicate": ("no_join_predicate", Severity.WARNING),
    "ColumnsWithNoStatistics": ("columns_without_statistics", Severity.WARNING),
    "ColumnsWithStaleStatistics": ("stale_statistics", Severity.INFO),
    "MemoryGrantWarning": ("memory_grant", Severity.WARNING),
    "Wait": ("memory_grant_wait", Severity.WARNING),
    "UnmatchedIndexes": ("unmatched_indexes", Severity.WARNING),
    "SpatialGuess": ("spatial_guess", Severity.INFO),
    "FullUpdateForOnlineIndexBuild": ("online_index_build_full_update", Severity.INFO),
}
# CONVERT_IMPLICIT(type, <operand> ...: the operand is a column or expression when it starts with
# "[" and is not a parameter or variable ("[@p1]").
_COLUMN_CONVERSION = re.compile(r"CONVERT_IMPLICIT\((?:[^(),]|\([^)]*\))+,(\[(?!@)[^\]]*\](?:\.\[[^\]]*\])*)")

RULE_IDS = (
    "implicit_conversion",
    "spill",
    "missing_index",
    "no_join_predicate",
    "columns_without_statistics",
    "stale_statistics",
    "key_lookup",
    "memory_grant",
    "memory_grant_wait",
    "unmatched_indexes",
    "eager_index_spool",
    "scalar_udf",
    "table_variable",
    "forced_serialization",
    "parameter_sniffing",
    "compile_timeout",
    "compile_memory_limit",
    "parallel_skew",
    "spatial_guess",
    "online_index_build_full_update",
    "plan_warning",
)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, per statement
class _Scope:
    """One statement with its operators and engine warnings listed once, shared by every rule."""

    statement: PlanStatement
    nodes: list[PlanNode]
    warnings: list[tuple[PlanNode | None, PlanWarning]]


def find(statement: PlanStatement) -> list[Finding]:
    """Every SQL Server anti-pattern finding of one statement, in rule order then operator order."""
    nodes = list(statement.nodes())
    sites: list[tuple[PlanNode | None, PlanWarning]] = [(None, warning) for warning in statement.warnings]
    sites.extend((node, warning) for node in nodes for warning in node.warnings)
    scope = _Scope(statement, nodes, sites)
    findings: list[Finding] = []
    for rule in _RULES:
        findings.extend(rule(scope))
    return findings


# --- engine warnings ----------------------------------------------------------------------------------


def engine_warnings(scope: _Scope) -> Iterator[Finding]:
    """Surface every warning SQL Server wrote into the plan (spills and converts have their own rules)."""
    for node, warning in scope.warnings:
        if warning.kind in _SPILL_KINDS or warning.kind == "PlanAffectingConvert":
            continue
        finding_id, severity = _WARNING_FINDINGS.get(warning.kind, ("plan_warning", Severity.INFO))
        if warning.kind == "Wait" and warning.details.get("WaitType") != "Memory Grant":
            finding_id, severity = "plan_warning", Severity.INFO
        evidence: dict[str, Any] = {"warning": warning.kind, **warning.details}
        if warning.kind == "UnmatchedIndexes":
            evidence["indexes"] = scope.statement.properties.get("UnmatchedIndexes", [])
        yield Finding(finding_id, severity, warning.message, _node_id(node), evidence)


def spills(scope: _Scope) -> Iterator[Finding]:
    """One ``spill`` finding per operator that spilled, with the tempdb pages written when known."""
    by_node: dict[int | None, list[PlanWarning]] = {}
    for node, warning in scope.warnings:
        if warning.kind in _SPILL_KINDS:
            by_node.setdefault(_node_id(node), []).append(warning)
    for node_id, warnings in by_node.items():
        pages = sum(_number(w.details.get("WritesToTempDb")) for w in warnings)
        severity = Severity.CRITICAL if pages >= SPILL_CRITICAL_PAGES else Severity.WARNING
        kinds = sorted({w.kind for w in warnings})
        levels = [w.details["SpillLevel"] for w in warnings if "SpillLevel" in w.details]
        message = f"operator spilled to tempdb ({', '.join(kinds)}"
        message += f", {pages:,.0f} pages = {pages * 8 / 1024:,.1f} MB written)" if pages else ")"
        evidence = {"kinds": kinds, "writes_to_tempdb_pages": pages, "spill_levels": levels}
        yield Finding("spill", severity, message, node_id, evidence)


# --- implicit conversions ------------------------------------------------------------------------------


def implicit_conversions(scope: _Scope) -> Iterator[Finding]:
    """PlanAffectingConvert warnings, and column-side CONVERT_IMPLICIT in predicates of older plans."""
    warned = False
    for node, warning in scope.warnings:
        if warning.kind != "PlanAffectingConvert":
            continue
        warned = True
        issue = str(warning.details.get("ConvertIssue", ""))
        # "Seek Plan": the conversion stops an index seek; "Cardinality Estimate": it only blurs estimates
        severity = Severity.WARNING if issue == "Seek Plan" else Severity.INFO
        expression = strip_literals(str(warning.details.get("Expression", "")))  # no constants in evidence
        evidence = {"convert_issue": issue, "expression": expression}
        yield Finding("implicit_conversion", severity, warning.message, _node_id(node), evidence)
    if warned:
        return  # SQL Server (2012+) judged the conversions itself: do not second-guess them per operator
    for node in scope.nodes:
        yield from _predicate_conversions(node)


def _predicate_conversions(node: PlanNode) -> Iterator[Finding]:
    """CONVERT_IMPLICIT applied to a column in a seek or filter predicate of a table access.

    On a filter of a scan over the converted column's own table, the conversion is what prevents the
    seek (warning); in a seek predicate the converted column is the other side's, so the seek still
    works but types of joined columns differ (information).
    """
    if node.object is None:
        return
    for predicate in node.predicates:
        if predicate.kind not in ("seek", "filter"):
            continue
        for match in _COLUMN_CONVERSION.finditer(predicate.text):
            column = match.group(1)
            names = (node.object.table, node.object.alias)
            own_table = any(f"[{name}]." in column for name in names if name)
            severity = Severity.WARNING if predicate.kind == "filter" and own_table else Severity.INFO
            message = f"implicit conversion of {column} in a {predicate.kind} predicate"
            evidence = {"predicate_kind": predicate.kind, "column": column, "predicate": predicate.text}
            yield Finding("implicit_conversion", severity, message, node.node_id, evidence)
            break


# --- indexes -------------------------------------------------------------------------------------------


def missing_indexes(scope: _Scope) -> Iterator[Finding]:
    """Missing-index suggestions: warnings from MISSING_INDEX_WARNING_IMPACT up, information below."""
    statement = scope.statement
    for index in statement.missing_indexes:
        impact = index.impact or 0.0
        severity = Severity.WARNING if impact >= MISSING_INDEX_WARNING_IMPACT else Severity.INFO
        keys = ", ".join(index.equality_columns + index.inequality_columns)
        message = f"missing index on {index.qualified_table} ({keys}) with estimated impact {impact:.0f} %"
        evidence = {
            "table": index.qualified_table,
            "impact": impact,
            "equality_columns": list(index.equality_columns),
            "inequality_columns": list(index.inequality_columns),
            "include_columns": list(index.include_columns),
        }
        yield Finding("missing_index", severity, message, None, evidence)


def key_lookups(scope: _Scope) -> Iterator[Finding]:
    """Key or RID lookups that cost at least KEY_LOOKUP_COST_SHARE of a non-trivial statement."""
    statement = scope.statement
    total = _statement_cost(statement)
    if total is None or total < MIN_STATEMENT_COST_FOR_SHARES:
        return
    for node in scope.nodes:
        if not _is_lookup(node) or node.estimated_cost is None:
            continue
        share = node.estimated_cost / total
        if share >= KEY_LOOKUP_COST_SHARE:
            kind = "RID lookup" if node.physical_op == "RID Lookup" else "key lookup"
            message = f"{kind} on {_object_name(node)} is {share:.0%} of the statement's estimated cost"
            evidence = {
                "cost_share": round(share, 4),
                "lookup_cost": node.estimated_cost,
                "estimated_executions": node.estimated_executions,
                "actual_executions": node.actual_executions,
            }
            yield Finding("key_lookup", Severity.WARNING, message, node.node_id, evidence)


def eager_index_spools(scope: _Scope) -> Iterator[Finding]:
    """Index Spool (Eager Spool): SQL Server builds a temporary index on every execution."""
    statement = scope.statement
    total = _statement_cost(statement)
    for node in scope.nodes:
        if node.physical_op != "Index Spool" or node.logical_op != "Eager Spool":
            continue
        share = (node.estimated_cost or 0.0) / total if total else None
        severity = Severity.WARNING if share is None or share >= EAGER_SPOOL_WARNING_SHARE else Severity.INFO
        message = "eager index spool: an index is built at run time, a permanent index would avoid it"
        evidence = {"cost_share": None if share is None else round(share, 4), "cost": node.estimated_cost}
        yield Finding("eager_index_spool", severity, message, node.node_id, evidence)


# --- memory ----------------------------------------------------------------------------------------


def unused_memory_grant(scope: _Scope) -> Iterator[Finding]:
    """A large grant that was mostly unused (actual plans); skipped when SQL Server already warned."""
    statement = scope.statement
    grant = statement.memory_grant
    if grant is None or grant.granted_kb is None or grant.max_used_kb is None or not statement.is_actual:
        return
    if any(w.kind == "MemoryGrantWarning" for _, w in scope.warnings):
        return
    if grant.granted_kb < UNUSED_GRANT_MIN_KB:
        return
    used = grant.max_used_kb / grant.granted_kb
    if used < UNUSED_GRANT_MAX_USED_FRACTION:
        message = f"memory grant of {grant.granted_kb / 1024:,.0f} MB was {used:.1%} used"
        evidence = {"granted_kb": grant.granted_kb, "max_used_kb": grant.max_used_kb, "used_fraction": used}
        yield Finding("memory_grant", Severity.WARNING, message, None, evidence)


# --- functions, table variables, parallelism -----------------------------------------------------------


def scalar_udfs(scope: _Scope) -> Iterator[Finding]:
    """Operators calling scalar user-defined functions: run once per row; T-SQL ones block parallelism."""
    for node in scope.nodes:
        functions = node.properties.get("ScalarUDF")
        if not functions:
            continue
        clr = bool(node.properties.get("ClrFunction"))
        severity = Severity.INFO if clr else Severity.WARNING
        names = sorted(set(functions))
        message = f"scalar {'CLR ' if clr else ''}function {', '.join(names)} runs once per row"
        yield Finding("scalar_udf", severity, message, node.node_id, {"functions": names, "clr": clr})


def table_variables(scope: _Scope) -> Iterator[Finding]:
    """Table variables (fixed low estimates before SQL Server 2019, no parallel writes), once per variable."""
    seen: set[str] = set()
    for node in scope.nodes:
        if node.object is None or not node.object.table.startswith("@") or node.object.table in seen:
            continue
        seen.add(node.object.table)
        misestimated = _underestimated_by(node, TABLE_VARIABLE_ESTIMATE_RATIO, TABLE_VARIABLE_MIN_ROWS)
        severity = Severity.WARNING if misestimated else Severity.INFO
        message = f"table variable {node.object.table}"
        message += " holds far more rows than estimated" if misestimated else " (fixed row estimates)"
        evidence = {
            "table": node.object.table,
            "estimated_rows": node.estimated_rows,
            "actual_rows": node.actual_rows,
        }
        yield Finding("table_variable", severity, message, node.node_id, evidence)


def forced_serialization(scope: _Scope) -> Iterator[Finding]:
    """A serial plan forced by something in the query (see SERIALIZING_REASONS for what is left out)."""
    statement = scope.statement
    reason = statement.non_parallel_reason
    if reason not in SERIALIZING_REASONS:
        return
    cost = _statement_cost(statement)
    severity = Severity.WARNING if cost is not None and cost >= PARALLEL_COST_THRESHOLD else Severity.INFO
    message = f"the plan cannot go parallel: {reason}"
    yield Finding("forced_serialization", severity, message, None, {"reason": reason, "statement_cost": cost})


def parallel_skew(scope: _Scope) -> Iterator[Finding]:
    """Parallel operators where one worker did most of the rows (thread 0, the coordinator, excluded)."""
    statement = scope.statement
    if not statement.is_actual or (statement.dop or 0) <= 1:
        return
    skewed = {node.node_id: share for node in scope.nodes if (share := _skew_share(node)) is not None}
    for node in scope.nodes:
        if node.node_id not in skewed or any(child.node_id in skewed for child in _descendants(node)):
            continue  # report where the skew starts, not every operator above it
        workers = [t for t in node.per_thread if t.thread > 0]
        rows = sum(t.rows for t in workers)
        message = f"one of {len(workers)} threads processed {skewed[node.node_id]:.0%} of {rows:,.0f} rows"
        evidence = {
            "busiest_share": round(skewed[node.node_id], 4),
            "rows": rows,
            "threads": len(workers),
            "dop": statement.dop,
            "skewed_operators": sorted(skewed),
        }
        yield Finding("parallel_skew", Severity.WARNING, message, node.node_id, evidence)


def _skew_share(node: PlanNode) -> float | None:
    """The busiest worker's share of rows when it counts as skew, else None."""
    if not node.parallel:
        return None
    workers = [t for t in node.per_thread if t.thread > 0]
    rows = sum(t.rows for t in workers)
    if len(workers) < 2 or rows < SKEW_MIN_ROWS:
        return None
    share = max(t.rows for t in workers) / rows
    fair = 1.0 / len(workers)
    return share if share >= SKEW_MIN_SHARE and share >= SKEW_FAIR_SHARE_FACTOR * fair else None


# --- compilation and parameters --------------------------------------------------------------------------


def compile_limits(scope: _Scope) -> Iterator[Finding]:
    """Optimization stopped early: on a time-out (plan may be poor) or on the compile memory limit."""
    statement = scope.statement
    reason = statement.early_abort_reason
    cost = _statement_cost(statement)
    if reason == "TimeOut":
        # a time-out on a cheap statement produced a cheap plan: nothing to gain by searching longer
        severity = Severity.WARNING if cost is not None and cost >= PARALLEL_COST_THRESHOLD else Severity.INFO
        message = "the optimizer timed out and kept the best plan found so far"
        yield Finding("compile_timeout", severity, message, None, _compile_evidence(statement, reason))
    elif reason == "MemoryLimitExceeded":
        message = "the optimizer hit its compile memory limit and kept the best plan found so far"
        yield Finding(
            "compile_memory_limit", Severity.WARNING, message, None, _compile_evidence(statement, reason)
        )


def _compile_evidence(statement: PlanStatement, reason: str) -> dict[str, Any]:
    """The numbers behind a compile-limit finding."""
    return {
        "reason": reason,
        "compile_cpu_ms": statement.compile_cpu_ms,
        "compile_memory_kb": statement.compile_memory_kb,
        "statement_cost": _statement_cost(statement),
    }


def parameter_sniffing(scope: _Scope) -> Iterator[Finding]:
    """Compiled and runtime parameter values differ and some operator's estimate is off by 10x or more."""
    statement = scope.statement
    if not statement.is_actual:
        return
    changed = [
        p
        for p in statement.parameters
        if p.compiled_value is not None
        and p.runtime_value is not None
        and p.compiled_value != p.runtime_value
    ]
    if not changed:
        return
    worst: tuple[float, PlanNode] | None = None
    for node in scope.nodes:
        ratio = _estimate_ratio(node)
        if ratio is not None and ratio >= SNIFFING_ESTIMATE_RATIO and (worst is None or ratio > worst[0]):
            worst = (ratio, node)
    if worst is None:
        return
    ratio, node = worst
    message = (
        f"plan compiled for other parameter values; operator {node.node_id} estimate off by {ratio:,.0f}x"
    )
    evidence = {
        "parameters": [
            {"name": p.name, "compiled": p.compiled_value, "runtime": p.runtime_value} for p in changed
        ],
        "estimate_ratio": round(ratio, 1),
        "estimated_rows": _estimated_total_rows(node),
        "actual_rows": node.actual_rows,
    }
    yield Finding("parameter_sniffing", Severity.WARNING, message, node.node_id, evidence)


def _estimate_ratio(node: PlanNode) -> float | None:
    """max(estimated/actual, actual/estimated) over all executions, when either side is material."""
    estimated = _estimated_total_rows(node)
    if estimated is None or node.actual_rows is None or not node.actual_executions:
        return None
    if max(estimated, node.actual_rows) < SNIFFING_MIN_ROWS:
        return None
    low, high = sorted((max(estimated, 1.0), max(node.actual_rows, 1.0)))
    return high / low


# --- helpers -------------------------------------------------------------------------------------------


def _estimated_total_rows(node: PlanNode) -> float | None:
    """Estimated rows over all executions (EstimateRows is per execution)."""
    if node.estimated_rows is None:
        return None
    return node.estimated_rows * (node.estimated_executions or 1.0)


def _underestimated_by(node: PlanNode, ratio: float, min_rows: float) -> bool:
    """True when actual rows reach ``min_rows`` and at least ``ratio`` times the estimate."""
    estimated = _estimated_total_rows(node)
    if estimated is None or node.actual_rows is None:
        return False
    return node.actual_rows >= min_rows and node.actual_rows >= ratio * max(estimated, 1.0)


def _is_lookup(node: PlanNode) -> bool:
    """Key Lookup (IndexScan Lookup="true" on a clustered index) or RID Lookup."""
    return node.physical_op in ("Key Lookup", "RID Lookup") or node.properties.get("Lookup") is True


def _statement_cost(statement: PlanStatement) -> float | None:
    """StatementSubTreeCost, else the root operator's subtree cost."""
    if statement.estimated_cost:
        return statement.estimated_cost
    return statement.root.estimated_cost if statement.root is not None else None


def _descendants(node: PlanNode) -> Iterator[PlanNode]:
    """Every operator below ``node`` (not the node itself)."""
    walk = node.walk()
    next(walk)  # the node itself
    return walk


def _object_name(node: PlanNode) -> str:
    """The operator's object for messages, else its physical operator name."""
    return node.object.qualified if node.object is not None else node.physical_op


def _node_id(node: PlanNode | None) -> int | None:
    """The node id of an operator, None for statement-level findings."""
    return node.node_id if node is not None else None


def _number(value: Any) -> float:
    """A warning detail as a number (0 when absent or not numeric)."""
    return float(value) if isinstance(value, int | float) else 0.0


_RULES: tuple[Callable[[_Scope], Iterable[Finding]], ...] = (
    engine_warnings,
    spills,
    implicit_conversions,
    missing_indexes,
    key_lookups,
    eager_index_spools,
    unused_memory_grant,
    scalar_udfs,
    table_variables,
    forced_serialization,
    parallel_skew,
    compile_limits,
    parameter_sniffing,
)
