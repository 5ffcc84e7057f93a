"""MySQL/MariaDB proposals: recreate a dropped index online, else ANALYZE TABLE the plan's tables.

The captured definition (``CREATE [UNIQUE] INDEX `i` ON `db`.`t` (...)``, built by the collector from
information_schema.STATISTICS) is rebuilt as ``ALTER TABLE ... ADD INDEX ..., ALGORITHM=INPLACE,
LOCK=NONE``: the server refuses rather than blocking writes when it cannot build online.
"""

from __future__ import annotations

import re

from planmon.engines._proposals import IndexInspector, dropped_baseline_indexes, plan_tables
from planmon.engines.mysql.dialect import quote_identifier
from planmon.model import (
    Action,
    Evidence,
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


def quote(name: QualifiedName) -> str:
    """```database`.`table``` (or ```table```), backticks doubled inside names."""
    return name.quoted(quote_identifier)


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
    return Proposal(
        action=Action.RECREATE_INDEX,
        database_name=context.database_name,
        statements=(Statement(add),),
        rollback=(Statement(drop),),
        expected_effect=(
            f"the baseline plan used index {snapshot.index_name} on {snapshot.table}, which is gone; "
            "with it back the optimizer can return to the baseline plan"
        ),
        evidence=Evidence(
            index=snapshot.index_name,
            table=snapshot.table,
            captured_definition=snapshot.definition,
            last_seen=str(snapshot.last_seen),
        ),
        objects=(snapshot.table,),
    )


def analyze(context: RegressionContext, tables: list[QualifiedName]) -> Proposal:
    return Proposal(
        action=Action.ANALYZE,
        database_name=context.database_name,
        statements=(Statement("ANALYZE TABLE " + ", ".join(quote(t) for t in tables)),),
        rollback=(),
        expected_effect="fresh index statistics may let the optimizer choose the baseline plan",
        evidence=Evidence(tables=tuple(tables)),
        objects=tuple(tables),
    )
