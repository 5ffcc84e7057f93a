"""PostgreSQL 13+: the engine object (``planmon.engines.get_engine("postgres")``).

``dialect`` quotes, classifies errors and sets sessions up; ``adapter`` collects (pg_stat_statements,
EXPLAIN, pg_indexes); ``probe`` runs probes; ``remediation`` proposes recreate-index and ANALYZE.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from planmon.config import Settings
from planmon.engines._base import Engine
from planmon.engines.base import ConnectionFactory, ProbeSession, SessionPolicy
from planmon.engines.postgres import predict, probe_guard, remediation
from planmon.engines.postgres.adapter import Adapter
from planmon.engines.postgres.dialect import PostgresDialect
from planmon.engines.postgres.probe import PostgresProbeSession
from planmon.model import Action, Prediction, RegressionContext, Remediation

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

    def predict(
        self,
        connect: ConnectionFactory | None,
        context: RegressionContext,
        record: Remediation,
        settings: Settings,
    ) -> Prediction:
        """recreate_index: the planner's choice with the index as a hypothetical one (hypopg)."""
        if record.action is not Action.RECREATE_INDEX:
            return Prediction.unavailable(
                f"no prediction for {record.action.value}: its effect cannot be measured before it runs"
            )
        if connect is None:
            return Prediction.unavailable(
                "no prediction: the target's collection connection does not resolve"
            )
        return predict.predict_index(self.collection_sessions(connect, settings), context, record)


ENGINE = PostgresEngine()
