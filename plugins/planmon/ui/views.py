"""What each page shows, as plain data: the JSON routes return it, the HTML templates render it.

No FastAPI and no Airflow here, so every shape is testable with a repository alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from planmon.errors import PlanParseError
from planmon.plans import Plan, PlanNode, PlanStatement, diff_statements, find_all, parse_plan
from planmon.plans.cost import ExpectedCost, expected_costs
from planmon.plans.diff import operator_name
from planmon.store.ui_queries import Timeline, UIQueries, jsonable
from planmon.ui.charts import NO_POINTS, Series, Window, colour

DEFAULT_INTERVAL = timedelta(hours=1)
AFTER_DETECTION = timedelta(hours=24)  # the whole span: shown after the last detection
MAX_STATEMENTS = 50  # statements of one plan document rendered; the rest are counted
# The default span, around the regression: before it, three times its length (at least 12 intervals)
# of the baseline to compare with; after it, its length again (at least 4 intervals), up to now.
LEAD_FACTOR, LEAD_INTERVALS = 3, 12
TRAIL_FACTOR, TRAIL_INTERVALS = 1, 4
SPANS = ("incident", "full")  # around the regression (default); the whole baseline window


# -- regression detail --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Windows:
    """The chart's range and the two marked windows of a regression."""

    chart_start: datetime
    chart_end: datetime
    baseline: Window
    regressed: Window
    span: str = "incident"

    def as_dict(self) -> dict[str, Any]:
        return {
            "chart": {
                "start": self.chart_start.isoformat(),
                "end": self.chart_end.isoformat(),
                "span": self.span,
            },
            "baseline": {"start": self.baseline.start.isoformat(), "end": self.baseline.end.isoformat()},
            "regressed": {"start": self.regressed.start.isoformat(), "end": self.regressed.end.isoformat()},
        }

    @property
    def baseline_shown(self) -> timedelta:
        """How much of the baseline window the chart shows."""
        return max(self.baseline.end - max(self.baseline.start, self.chart_start), timedelta(0))


def regression_windows(
    row: Mapping[str, Any], baseline_days: int, interval: timedelta, *, now: datetime, span: str = "incident"
) -> Windows:
    """Baseline and regressed windows of a regression, and the chart's range.

    The regression stores when it was first and last detected (each the end of an analysed window)
    and how many intervals of data the window had (``evidence.current_intervals``): the regressed
    window starts that many intervals before the first detection (at least one) and ends at the
    last; the baseline window is the ``baseline_days`` before it, as the detector used.

    ``span="incident"`` (the default) charts the regression with enough of the baseline before it
    to compare and its aftermath (``LEAD_*``, ``TRAIL_*``), never past ``now``; ``"full"`` charts
    the whole baseline window to a day after the last detection (or the resolution, when later).
    """
    if span not in SPANS:
        raise ValueError(f"span must be one of {', '.join(SPANS)}, not {span!r}")
    evidence = row.get("evidence") or {}
    intervals = evidence.get("current_intervals") if isinstance(evidence, Mapping) else None
    count = int(intervals) if isinstance(intervals, int | float) and intervals > 0 else 1
    first, last = row["first_detected"], row["last_detected"]
    regressed_start = first - interval * count
    baseline_start = regressed_start - timedelta(days=baseline_days)
    resolved = row.get("resolved_at")
    after = max(last, resolved or last)
    if span == "full":
        chart_start, chart_end = baseline_start, max(last + AFTER_DETECTION, after)
    else:
        length = max(last - regressed_start, interval)
        lead = min(max(length * LEAD_FACTOR, interval * LEAD_INTERVALS), regressed_start - baseline_start)
        trail = max(length * TRAIL_FACTOR, interval * TRAIL_INTERVALS)
        chart_start, chart_end = regressed_start - lead, min(after + trail, max(now, after))
    return Windows(
        chart_start=chart_start,
        chart_end=chart_end,
        baseline=Window("baseline", baseline_start, regressed_start, f"baseline {baseline_days} days"),
        regressed=Window("regressed", regressed_start, last, "regressed: first to last detection"),
        span=span,
    )


def plan_label(plan_id: int, identity: Mapping[str, Any] | None) -> str:
    if not identity:
        return f"plan {plan_id}"
    shape = identity.get("shape_hash") or "no shape"
    forced = " (forced)" if identity.get("is_forced") else ""
    return f"plan {plan_id} · {identity.get('plan_key')} · shape {shape}{forced}"


def timeline_series(timeline: Timeline, metric: str) -> list[Series]:
    """One series per plan (ordered by plan id) of ``cpu_us_mean`` or ``duration_us_mean``."""
    by_plan: dict[int, list[tuple[datetime, float]]] = {}
    for point in timeline.points:
        value = getattr(point, metric)
        if value is not None and math.isfinite(value):
            by_plan.setdefault(point.plan_id, []).append((point.interval_start, value))
    return [
        Series(plan_id, plan_label(plan_id, timeline.plans.get(plan_id)), points)
        for plan_id, points in sorted(by_plan.items())
    ]


def empty_chart_message(timeline: Timeline, metric: str, engine: str | None) -> str:
    """Why a metric's chart has no points: the engine does not report it (its rows carry other
    metrics, as PostgreSQL's carry duration and no CPU), or there are no statistics at all."""
    has_metric = any(getattr(p, metric) is not None for p in timeline.points)
    if timeline.points and not has_metric and metric == "cpu_us_mean":
        who = f"this engine ({engine})" if engine else "this engine"
        return f"{who} reports no CPU per statement: see the duration per execution"
    return NO_POINTS


def plan_colours(timeline: Timeline) -> dict[int, str]:
    """One colour per plan of the timeline, the same in both charts and the legend."""
    ids = sorted({p.plan_id for p in timeline.points} | set(timeline.plans))
    return {plan_id: colour(i) for i, plan_id in enumerate(ids)}


def timeline_json(timeline: Timeline, windows: Windows) -> dict[str, Any]:
    """The timeline route's body: windows, and per plan its identity and points."""
    plans: dict[int, dict[str, Any]] = {}
    for point in timeline.points:
        entry = plans.setdefault(
            point.plan_id,
            {
                "plan_id": point.plan_id,
                "label": plan_label(point.plan_id, timeline.plans.get(point.plan_id)),
                **{k: v for k, v in (timeline.plans.get(point.plan_id) or {}).items() if k != "id"},
                "points": [],
            },
        )
        entry["points"].append(
            {
                "interval_start": point.interval_start.isoformat(),
                "interval_end": point.interval_end.isoformat(),
                "executions": point.executions,
                "cpu_us_mean": point.cpu_us_mean,
                "duration_us_mean": point.duration_us_mean,
            }
        )
    return {
        **windows.as_dict(),
        "truncated": timeline.truncated,
        "series": [plans[k] for k in sorted(plans)],
    }


def statistics_rows(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Baseline vs current statistics of a regression, from its columns and evidence."""
    raw = row.get("evidence")
    evidence: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    base = evidence.get("baseline_plan") or {}
    current = evidence.get("current_plan") or {}
    return [
        {"name": "plan", "baseline": row.get("baseline_plan_id"), "current": row.get("current_plan_id")},
        {"name": "shape", "baseline": base.get("shape"), "current": current.get("shape")},
        {"name": f"mean {row.get('metric')}", "baseline": row.get("baseline_mean"),
         "current": row.get("current_mean")},
        {"name": "stdev", "baseline": base.get("stdev"), "current": current.get("stdev")},
        {"name": "executions", "baseline": base.get("executions"), "current": current.get("executions")},
        {"name": "intervals", "baseline": base.get("intervals"), "current": current.get("intervals")},
    ]  # fmt: skip


def query_variants(queries: UIQueries, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SQL Server PSP: the variants of the regressed query's parent (the query itself marked), or of
    the query when it is a parent; empty for a query that is no PSP query."""
    parent = row.get("parent_query_key") or row.get("query_key")
    variants = queries.query_variants(row["target_id"], row.get("database_name") or "", str(parent))
    for variant in variants:
        variant["this_query"] = variant["query_key"] == row.get("query_key")
    return variants


def regression_diff(queries: UIQueries, row: Mapping[str, Any]) -> dict[str, Any]:
    """The plan diff: both plans' trees side by side and the changes (stored, else computed)."""
    sides: dict[str, Any] = {}
    parsed: dict[str, Plan | None] = {}
    for side in ("baseline", "current"):
        plan_id = row.get(f"{side}_plan_id")
        stored = queries.plan(int(plan_id)) if plan_id else None
        parsed[side] = _parse_stored(stored)
        sides[side] = plan_view(parsed[side], stored) if stored else None
    changes = row.get("diff") if isinstance(row.get("diff"), Mapping) else None
    before, after = parsed["baseline"], parsed["current"]
    if changes is None and before and after and before.statements and after.statements:
        changes = diff_statements(before.statements[0], after.statements[0]).as_dict()
    return {"baseline": sides["baseline"], "current": sides["current"], "changes": changes}


def plan_findings(view: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every finding of a plan view, statement by statement."""
    return [f for s in (view or {}).get("statements", []) for f in s["findings"]]


def changed_tables(changes: Mapping[str, Any] | None) -> set[str]:
    if not changes:
        return set()
    return {str(c["object"]) for c in changes.get("changes") or [] if c.get("object")}


# -- plan view ----------------------------------------------------------------------------------------


def _parse_stored(stored: Mapping[str, Any] | None) -> Plan | None:
    if not stored or not stored.get("body"):
        return None
    try:
        return parse_plan(stored["body"], source=f"plan {stored['id']}")
    except PlanParseError:
        return None


def plan_view_from_row(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The plan view of a stored plan (its identity; statements when its document parses)."""
    try:
        plan = parse_plan(stored["body"], source=f"plan {stored['id']}") if stored.get("body") else None
    except PlanParseError as exc:
        view = plan_view(None, stored)
        view["error"] = str(exc)
        return view
    return plan_view(plan, stored)


def plan_view(plan: Plan | None, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A plan as the page and the JSON route show it: statements, each with a flat operator list
    (``depth`` and ``parent`` give the tree: no recursion, however deep the plan) and findings."""
    identity = {
        k: jsonable(v)
        for k, v in (stored or {}).items()
        if k in ("id", "plan_key", "shape_hash", "engine_plan_hash", "body_format", "target", "engine",
                 "query_key", "database_name", "query_text", "is_forced", "forcing_type", "first_seen",
                 "last_seen")
    }  # fmt: skip
    if plan is None:
        return {**identity, "document": False, "statements": [], "statements_total": 0}
    statements = [_statement_view(s, plan.engine) for s in plan.statements[:MAX_STATEMENTS]]
    return {
        **identity,
        "document": True,
        "plan_engine": plan.engine,
        "engine_version": plan.engine_version,
        "source": plan.source,
        "statements": statements,
        "statements_total": len(plan.statements),
    }


def _statement_view(statement: PlanStatement, engine: Any) -> dict[str, Any]:
    findings = [f.as_dict() for f in find_all(statement, engine)]
    by_node: dict[int, list[dict[str, Any]]] = {}
    for finding in findings:
        if finding["node"] is not None:
            by_node.setdefault(int(finding["node"]), []).append(finding)
    return {
        "index": statement.index,
        "statement_type": statement.statement_type,
        "text": statement.text,
        "is_actual": statement.is_actual,
        "estimated_cost": statement.estimated_cost,
        "dop": statement.dop,
        "findings": findings,
        "statement_findings": [f for f in findings if f["node"] is None],
        "nodes": _flat_nodes(statement.root, by_node),
    }


def _flat_nodes(root: PlanNode | None, by_node: Mapping[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if root is None:
        return []
    expected = expected_costs(root)
    total = expected[root.node_id].cost or 0.0
    if not math.isfinite(total):
        total = 0.0  # a statement costed at infinity: no operator has a meaningful share of it
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[PlanNode, int, int | None]] = [(root, 0, None)]
    while stack:
        node, depth, parent = stack.pop()
        findings = by_node.get(node.node_id, [])
        nodes.append(_node_view(node, depth, parent, findings, expected=expected[node.node_id], total=total))
        stack.extend((child, depth + 1, node.node_id) for child in reversed(node.children))
    return nodes


def _node_view(
    node: PlanNode,
    depth: int,
    parent: int | None,
    findings: Sequence[dict[str, Any]],
    *,
    expected: ExpectedCost,
    total: float,
) -> dict[str, Any]:
    """One operator of the tree. Its cost share is its expected cost (bounded by its parent's, so an
    input a Limit stops reading early counts only as far as it is read) over the root's.

    An engine's cost can be infinite (PostgreSQL prints ``1e999`` when its estimate overflows): the
    cost stays infinite (the page shows "∞", JSON has no infinity and says null), while the share
    and the run fraction, ratios against infinity, are None rather than NaN or a meaningless 0."""
    actual = node.actual_rows_per_execution
    share = expected.cost / total if total > 0 and expected.cost is not None else None
    cost_known = node.estimated_cost is None or math.isfinite(node.estimated_cost)
    run_fraction = expected.run_fraction if cost_known else None
    ratio = None
    if actual is not None and node.estimated_rows:
        ratio = actual / node.estimated_rows if node.estimated_rows > 0 else None
    return {
        "node_id": node.node_id,
        "parent": parent,
        "depth": depth,
        "operator": operator_name(node),
        "logical_op": node.logical_op,
        "object": node.object.qualified if node.object else None,
        "table": ".".join(p for p in (node.object.schema, node.object.table) if p) if node.object else None,
        "estimated_cost": node.estimated_cost,
        "cost_share": share if share is not None and math.isfinite(share) else None,
        "run_fraction": run_fraction if run_fraction is not None and math.isfinite(run_fraction) else None,
        "estimated_rows": node.estimated_rows,
        "actual_rows": actual,
        "actual_executions": node.actual_executions,
        "row_ratio": ratio,
        "parallel": node.parallel,
        "predicates": [{"kind": p.kind, "text": p.text} for p in node.predicates],
        "warnings": [w.kind for w in node.warnings],
        "findings": list(findings),
    }


def parse_upload(data: bytes, *, engine: str | None, filename: str | None) -> dict[str, Any]:
    """The plan view of an uploaded plan document (parsed with the plan issue's ``parse_plan``)."""
    plan = parse_plan(data, engine=engine or None, source=filename or "upload")
    view = plan_view(plan, None)
    view["source"] = filename or "upload"
    return view
