"""What a remediation is, as data: the action, its exact statements and their rollback, the evidence.

A proposal is built per engine (``remediation/postgres.py``, ``mysql.py``, ``sqlserver.py``) and
stored in the ``remediation`` table before anything runs; every later step reads it back from there.
Statements carry their values as bound parameters (never formatted into the SQL); identifiers are
quoted by the dialect's own rules.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Action(enum.StrEnum):
    """Remediation actions planmon knows; a target's allow-list names these values."""

    FORCE_PLAN = "force_plan"  # SQL Server: force the last good plan through Query Store
    UNFORCE_PLAN = "unforce_plan"  # SQL Server: undo a force planmon placed
    QUERY_STORE_HINT = "query_store_hint"  # SQL Server 2022+: e.g. RECOMPILE for parameter-sensitive
    EVICT_PLAN = "evict_plan"  # SQL Server: DBCC FREEPROCCACHE (plan_handle)
    UPDATE_STATISTICS = "update_statistics"  # SQL Server: UPDATE STATISTICS on the plan's tables
    ANALYZE = "analyze"  # PostgreSQL ANALYZE / MySQL ANALYZE TABLE
    RECREATE_INDEX = "recreate_index"  # PostgreSQL / MySQL: an index of the baseline that is gone


class State(enum.StrEnum):
    """The remediation state machine (docs/remediation.md)."""

    PROPOSED = "proposed"
    REFUSED = "refused"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    FAILED = "failed"
    KEPT = "kept"
    ROLLED_BACK = "rolled_back"


# Which states a transition may start from.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.REFUSED: frozenset({State.PROPOSED, State.APPROVED}),  # rails re-checked at apply time
    State.APPROVED: frozenset({State.PROPOSED}),
    State.REJECTED: frozenset({State.PROPOSED}),
    State.APPLIED: frozenset({State.APPROVED}),
    State.FAILED: frozenset({State.APPROVED, State.APPLIED}),
    State.KEPT: frozenset({State.APPLIED}),
    State.ROLLED_BACK: frozenset({State.APPLIED}),
}
OPEN_STATES = frozenset({State.PROPOSED, State.APPROVED, State.APPLIED})
FINAL_STATES = frozenset(State) - OPEN_STATES


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement to run on the target, its values bound as parameters (DB-API ``%s`` style)."""

    sql: str
    params: tuple[Any, ...] = ()
    autocommit: bool = True  # CREATE INDEX CONCURRENTLY and DBCC cannot run inside a transaction

    def as_text(self) -> str:
        """The statement as a DBA reads it: the SQL, and its bound values in a comment."""
        if not self.params:
            return f"{self.sql};"
        values = ", ".join(repr(value) for value in self.params)
        return f"{self.sql};  -- parameters: {values}"

    def as_dict(self) -> dict[str, Any]:
        return {"sql": self.sql, "params": list(self.params), "autocommit": self.autocommit}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Statement:
        return cls(str(value["sql"]), tuple(value.get("params") or ()), bool(value.get("autocommit", True)))


def statements_text(statements: Sequence[Statement]) -> str:
    return "\n".join(statement.as_text() for statement in statements)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A remediation before it is stored: what to run, how to undo it, why, and what should happen."""

    action: Action
    database_name: str
    statements: tuple[Statement, ...]
    rollback: tuple[Statement, ...]
    expected_effect: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    objects: tuple[str, ...] = ()  # tables (or indexes) the action touches

    @property
    def sql_text(self) -> str:
        return statements_text(self.statements)

    @property
    def rollback_text(self) -> str | None:
        return statements_text(self.rollback) if self.rollback else None

    def stored_evidence(self) -> dict[str, Any]:
        """Evidence as stored: the statements themselves (for execution) beside what justified them."""
        return {
            **dict(self.evidence),
            "database_name": self.database_name,
            "objects": list(self.objects),
            "statements": [s.as_dict() for s in self.statements],
            "rollback_statements": [s.as_dict() for s in self.rollback],
        }
