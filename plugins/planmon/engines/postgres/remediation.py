"""PostgreSQL proposals: recreate an index of the baseline that is gone, else ANALYZE the plan's tables.

Index builds run ``CREATE INDEX CONCURRENTLY`` (no write lock on the table) with the definition the
collector captured from ``pg_get_indexdef``; the rollback drops it again ``CONCURRENTLY``. ANALYZE
has no rollback (old statistics cannot be restored): verification records whether it helped.
Identifiers are quoted from their (schema, name) pair, never from a dotted string.
"""

from __future__ import annotations

import re

from planmon.engines import _proposals as proposals
from planmon.engines._proposals import IndexInspector, dropped_baseline_indexes, plan_tables
from planmon.engines.postgres.dialect import DIALECT
from planmon.model import (
    Action,
    IndexSnapshot,
    Proposal,
    QualifiedName,
    RegressionContext,
    Statement,
)

DEFAULT_SCHEMA = "public"
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)", re.IGNORECASE)


def propose(context: RegressionContext, inspector: IndexInspector | None = None) -> list[Proposal]:
    """Proposals in the order a DBA would try them: the missing index first, then ANALYZE."""
    proposals = [
        recreate_index(context, snapshot)
        for snapshot in dropped_baseline_indexes(context, "postgres", inspector)
    ]
    tables = plan_tables(context, "postgres")
    if tables:
        proposals.append(analyze(context, tables))
    return proposals


def concurrent_definition(definition: str) -> str:
    """``CREATE [UNIQUE] INDEX name ON ...`` as captured, rebuilt ``CONCURRENTLY``."""
    if not _CREATE_INDEX.match(definition):
        raise ValueError(f"not a CREATE INDEX definition: {definition[:80]!r}")
    return _CREATE_INDEX.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY ", definition, count=1)


def recreate_index(context: RegressionContext, snapshot: IndexSnapshot) -> Proposal:
    # an index lives in its table's schema
    index = QualifiedName(snapshot.table.schema or DEFAULT_SCHEMA, snapshot.index_name)
    return proposals.recreate_index(
        context,
        snapshot,
        statements=(Statement(concurrent_definition(snapshot.definition)),),
        rollback=(Statement(f"DROP INDEX CONCURRENTLY IF EXISTS {DIALECT.quote(index)}"),),
        objects=(snapshot.table, index),
        chooser="planner",
    )


def analyze(context: RegressionContext, tables: list[QualifiedName]) -> Proposal:
    return proposals.refresh_statistics(
        context,
        Action.ANALYZE,
        tuple(Statement(f"ANALYZE {DIALECT.quote(table)}") for table in tables),
        tables,
        "fresh statistics on the plan's tables may let the planner choose the baseline plan",
    )
