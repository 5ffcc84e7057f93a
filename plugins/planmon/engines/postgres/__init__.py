"""PostgreSQL 13+: the engine object (``planmon.engines.get_engine("postgres")``).

``dialect`` quotes, classifies errors and sets sessions up; ``adapter`` collects (pg_stat_statements,
EXPLAIN, pg_indexes); ``probe`` runs probes; ``remediation`` proposes recreate-index and ANALYZE.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from planmon.engines._base import Engine
from planmon.engines.base import ProbeSession, SessionPolicy
from planmon.engines.postgres import probe_guard, remediation
from planmon.engines.postgres.adapter import Adapter
from planmon.engines.postgres.dialect import PostgresDialect
from planmon.engines.postgres.probe import PostgresProbeSession
from planmon.model import Action

__all__ = ["ENGINE", "Adapter", "PostgresEngine"]


class PostgresEngine(PostgresDialect, Engine):
    adapter_type = Adapter
    proposer = staticmethod(remediation.propose)

    def make_probe_session(self, connection: Any, policy: SessionPolicy) -> ProbeSession:
        return PostgresProbeSession(connection, policy)  # autocommit: it begins and rolls back itself

    def classify_probe(self, sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
        return probe_guard.classify_probe(sql, extra_functions=extra_functions)

    def rolls_back_failed(self, action: Action) -> bool:
        # a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind: its rollback drops it
        return action is Action.RECREATE_INDEX


ENGINE = PostgresEngine()
