"""Predicting a PostgreSQL index proposal's effect without changing anything: hypopg.

With the ``hypopg`` extension installed in the target database, the regressed statement is
EXPLAINed (never ANALYZEd) with the proposed index created as a *hypothetical* one: it exists only
in this backend's memory, for the planner, inside a read-only transaction that is rolled back after
``hypopg_reset()``. The plan the planner would choose and its cost are shown beside the regressed
plan's. planmon never creates the extension (a DBA does: ``CREATE EXTENSION hypopg``); without it
the prediction says so. A planner that would not use the index contradicts the proposal: that is a
warning in the approval text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from planmon.engines.base import ConnectionFactory
from planmon.engines.postgres.adapter import explain_steps, unexplainable_reason
from planmon.engines.postgres.dialect import BEGIN, ROLLBACK
from planmon.model import Prediction, RegressionContext, Remediation
from planmon.sql import load_sql

log = logging.getLogger(__name__)

NO_HYPOPG = "no prediction: hypopg is not installed on the target"
_HYPOTHETICAL_NAME = re.compile(r"^<(\d+)>")
_CREATE_CONCURRENTLY = re.compile(r"\bINDEX\s+CONCURRENTLY\s+", re.IGNORECASE)


def plain_definition(sql: str) -> str:
    """``CREATE INDEX CONCURRENTLY ...`` as hypopg takes it (it refuses CONCURRENTLY)."""
    return _CREATE_CONCURRENTLY.sub("INDEX ", sql.strip().rstrip(";"), count=1)


def _plan_nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("Plans") or ():
        if isinstance(child, Mapping):
            yield from _plan_nodes(child)


def root_plan(document: Any) -> Mapping[str, Any] | None:
    """The top ``Plan`` node of an EXPLAIN (FORMAT JSON) or auto_explain document (bytes, text or parsed)."""
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    if isinstance(document, list):
        document = document[0] if document else None
    if isinstance(document, Mapping):
        plan = document.get("Plan", document)
        return plan if isinstance(plan, Mapping) and "Node Type" in plan else None
    return None


def _shape(plan: Mapping[str, Any]) -> str:
    """The plan in one line: node types with their relation and index, outermost first."""
    parts = []
    for node in _plan_nodes(plan):
        label = str(node.get("Node Type"))
        if node.get("Index Name"):
            label += f" using {node['Index Name']}"
        elif node.get("Relation Name"):
            label += f" on {node['Relation Name']}"
        parts.append(label)
    return " > ".join(parts)


def judge_hypothetical(
    explained: Any, hypothetical_oid: int, regressed_plan: Any, *, index_name: str
) -> Prediction:
    """The prediction from the EXPLAIN run with the hypothetical index (``indexrelid`` oid) present,
    beside the regressed plan: would the planner use the index, and at what cost."""
    plan = root_plan(explained)
    if plan is None:
        return Prediction.unavailable("no prediction: the hypothetical EXPLAIN returned no plan")
    marker = f"<{hypothetical_oid}>"
    used = any(str(node.get("Index Name") or "").startswith(marker) for node in _plan_nodes(plan))
    cost = float(plan.get("Total Cost") or 0.0)
    regressed = root_plan(regressed_plan)
    regressed_cost = float(regressed.get("Total Cost") or 0.0) if regressed is not None else None
    lines = [
        f"hypopg: with {index_name} as a hypothetical index the planner would choose: "
        f"{_shape(plan)} (estimated total cost {cost:.2f})",
    ]
    if regressed is not None and regressed_cost is not None:
        lines.append(
            f"regressed plan: {_shape(regressed)} (estimated total cost {regressed_cost:.2f})"
            + (f"; predicted x{regressed_cost / cost:.1f} cheaper" if used and cost > 0 else "")
        )
    contradicts = not used or (regressed_cost is not None and cost >= regressed_cost)
    if not used:
        lines.append(
            f"WARNING: the planner would not use {index_name}: the prediction contradicts the proposal"
        )
    elif contradicts:
        lines.append(
            f"WARNING: the planner would use {index_name} but at no lower estimated cost than the "
            "regressed plan: the prediction contradicts the proposal"
        )
    return Prediction(
        available=True,
        lines=tuple(lines),
        method="hypopg",
        contradicts=contradicts,
        details={"uses_index": used, "cost": cost, "regressed_cost": regressed_cost},
    )


def _execute(connection: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params) if params else cursor.execute(sql)
        if cursor.description is None:
            return []
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def hypopg_installed(connection: Any) -> bool:
    """True when the connection's database has the hypopg extension (created by a DBA)."""
    return bool(_execute(connection, load_sql("postgres", "hypopg_present")))


def _statement_text(connection: Any, query_key: str) -> str | None:
    if not re.fullmatch(r"-?\d+", query_key):
        return None
    rows = _execute(connection, load_sql("postgres", "statement_texts"), {"queryids": [int(query_key)]})
    return str(rows[0]["query_text"]) if rows else None


def _server_version_num(connection: Any) -> int:
    rows = _execute(connection, "SELECT /* planmon */ current_setting('server_version_num')::int AS v")
    return int(rows[0]["v"])


def hypothetical_explain(connection: Any, definition: str, text: str) -> tuple[int, Any]:
    """(hypothetical index oid, EXPLAIN document) of ``text`` with ``definition`` as a hypothetical
    index, in a read-only transaction that is always rolled back (and hypopg reset first)."""
    steps = explain_steps(text, _server_version_num(connection))
    _execute(connection, BEGIN)
    prepared = False
    try:
        [created] = _execute(
            connection, load_sql("postgres", "hypopg_create_index"), {"definition": definition}
        )
        for sql in steps.prepare:
            _execute(connection, sql)
        prepared = steps.deallocate is not None
        rows = _execute(connection, steps.explain)
        _execute(connection, load_sql("postgres", "hypopg_reset"))
    finally:
        _execute(connection, ROLLBACK)
        if prepared and steps.deallocate is not None:
            _execute(connection, steps.deallocate)
    return int(created["indexrelid"]), next(iter(rows[0].values()))


def predict_index(connect: ConnectionFactory, context: RegressionContext, record: Remediation) -> Prediction:
    """Predict a recreate_index proposal through ``connect`` (collection sessions: read-only work,
    autocommit, the collector's timeouts), or say why not."""
    definition = plain_definition(record.statements[0].sql) if record.statements else ""
    index_name = record.evidence.index or "the index"
    connection = connect(record.database_name or context.database_name or None)
    try:
        if not hypopg_installed(connection):
            return Prediction.unavailable(NO_HYPOPG)
        text = _statement_text(connection, context.query_key)
        if text is None:
            return Prediction.unavailable(
                "no prediction: the statement's text is no longer in pg_stat_statements"
            )
        refusal = unexplainable_reason(text)
        if refusal is not None:
            return Prediction.unavailable(f"no prediction: {refusal}")
        oid, explained = hypothetical_explain(connection, definition, text)
    finally:
        connection.close()
    prediction = judge_hypothetical(explained, oid, context.current_plan.body, index_name=index_name)
    log.info(
        "target %s: hypopg prediction for %s: uses index %s, contradicts %s",
        context.target.name,
        index_name,
        prediction.details.get("uses_index"),
        prediction.contradicts,
    )
    return prediction
