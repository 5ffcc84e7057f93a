"""MySQL/MariaDB proposals: recreate a dropped index online, else ANALYZE TABLE the plan's tables.

The captured definition (``CREATE [UNIQUE] INDEX `i` ON `db`.`t` (...)``, built by the collector from
information_schema.STATISTICS) is rebuilt as ``ALTER TABLE ... ADD INDEX ..., ALGORITHM=INPLACE,
LOCK=NONE``: the server refuses rather than blocking writes when it cannot build online.
"""

from __future__ import annotations

import re

from planmon.engines import _proposals as proposals
from planmon.engines._proposals import IndexInspector, dropped_baseline_indexes, plan_tables
from planmon.engines.mysql.dialect import DIALECT
from planmon.model import (
    Action,
    IndexSnapshot,
    Proposal,
    QualifiedName,
    RegressionContext,
    Statement,
)

ONLINE = "ALGORITHM=INPLACE, LOCK=NONE"
_DEFINITION = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX (?P<index>`(?:[^`]|``)+`)"
    r" ON (?P<table>`(?:[^`]|``)+`\.`(?:[^`]|``)+`)"
    r" (?P<columns>\(.*\))$"
)


def propose(context: RegressionContext, inspector: IndexInspector | None = None) -> list[Proposal]:
    proposals = [recreate_index(context, s) for s in dropped_baseline_indexes(context, "mysql", inspector)]
    # a table the plan names without its database lives in the statement's database
    tables = plan_tables(context, "mysql", default_schema=context.database_name or None)
    if tables:
        proposals.append(analyze(context, tables))
    return proposals


def online_add_index(definition: str) -> tuple[str, str]:
    """(ALTER TABLE ... ADD INDEX ... online, ALTER TABLE ... DROP INDEX ... online) for a definition."""
    match = _DEFINITION.match(definition.strip())
    if match is None:
        raise ValueError(f"not a plain CREATE INDEX definition: {definition[:80]!r}")
    kind = "UNIQUE INDEX" if match["unique"] else "INDEX"
    table, index = match["table"], match["index"]
    add = f"ALTER TABLE {table} ADD {kind} {index} {match['columns']}, {ONLINE}"
    drop = f"ALTER TABLE {table} DROP INDEX {index}, {ONLINE}"
    return add, drop


def recreate_index(context: RegressionContext, snapshot: IndexSnapshot) -> Proposal:
    add, drop = online_add_index(snapshot.definition)
    return proposals.recreate_index(
        context,
        snapshot,
        statements=(Statement(add),),
        rollback=(Statement(drop),),
        objects=(snapshot.table,),
        chooser="optimizer",
    )


def analyze(context: RegressionContext, tables: list[QualifiedName]) -> Proposal:
    return proposals.refresh_statistics(
        context,
        Action.ANALYZE,
        (Statement("ANALYZE TABLE " + ", ".join(DIALECT.quote(t) for t in tables)),),
        tables,
        "fresh index statistics may let the optimizer choose the baseline plan",
    )
