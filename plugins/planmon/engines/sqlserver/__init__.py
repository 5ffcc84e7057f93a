"""SQL Server 2016+: the engine object (``planmon.engines.get_engine("sqlserver")``).

``dialect`` quotes, binds, classifies errors and sets sessions up; ``adapter`` collects (Query Store,
or the plan cache when it is off); ``probe`` runs probes; ``remediation`` reads a query's live forcing
state and proposes hints, forces, evictions and UPDATE STATISTICS.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from planmon.config import Settings
from planmon.engines._base import Engine
from planmon.engines._proposals import IndexInspector
from planmon.engines.base import ConnectionFactory, ForcingState, ProbeSession, SessionPolicy
from planmon.engines.sqlserver import predict, probe_guard, remediation
from planmon.engines.sqlserver.adapter import Adapter
from planmon.engines.sqlserver.dialect import SqlServerDialect
from planmon.engines.sqlserver.probe import SqlServerProbeSession
from planmon.engines.sqlserver.remediation import QueryStoreState
from planmon.model import Action, Prediction, Proposal, RegressionContext, Remediation

__all__ = ["ENGINE", "Adapter", "SqlServerEngine"]


class SqlServerEngine(SqlServerDialect, Engine):
    adapter_type = Adapter
    has_live_forcing_state = True
    statistics_name_plans = True

    def make_probe_session(self, connection: Any, policy: SessionPolicy) -> ProbeSession:
        return SqlServerProbeSession(connection, policy)

    def classify_probe(self, sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
        return probe_guard.classify_probe(sql, extra_functions=extra_functions)

    def propose(
        self,
        context: RegressionContext,
        *,
        inspector: IndexInspector | None = None,
        forcing_state: ForcingState | None = None,
    ) -> list[Proposal]:
        state = forcing_state if isinstance(forcing_state, QueryStoreState) else None
        return remediation.propose(context, state)

    def read_forcing_state(
        self, connect: ConnectionFactory, context: RegressionContext, planmon_forced: frozenset[int]
    ) -> QueryStoreState:
        """Query Store's plans of the query and APC's recommendations, read live through ``connect``
        (the collection connection: read-only) in the query's database."""
        connection = connect(context.database_name or None)
        try:
            return remediation.read_state(connection, int(context.query_key), planmon_forced=planmon_forced)
        finally:
            connection.close()

    def applied_problem(
        self, applied: Remediation, read_forcing_state: Callable[[], ForcingState | None]
    ) -> str | None:
        """A force planmon placed is read back live: not forced any more, or failing, is a problem."""
        if applied.action is not Action.FORCE_PLAN:
            return None
        state = read_forcing_state()
        return remediation.applied_problem(applied, state) if isinstance(state, QueryStoreState) else None

    def predict(
        self,
        connect: ConnectionFactory | None,
        context: RegressionContext,
        record: Remediation,
        settings: Settings,
    ) -> Prediction:
        """force_plan: the last good plan's measured statistics and forcing history (nothing runs)."""
        return predict.predict_force(context, record)


ENGINE = SqlServerEngine()
