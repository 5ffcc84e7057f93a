"""MySQL 8 / MariaDB 10.6+: the engine object (``planmon.engines.get_engine("mysql")``).

``dialect`` quotes, classifies errors and sets sessions up; ``adapter`` collects (performance_schema
digests, EXPLAIN FORMAT=JSON, information_schema); ``probe`` runs probes; ``remediation`` proposes an
online index rebuild and ANALYZE TABLE.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from planmon.config import Settings
from planmon.engines._base import Engine
from planmon.engines.base import ConnectionFactory, ProbeSession, SessionPolicy
from planmon.engines.mysql import probe_guard, remediation
from planmon.engines.mysql.adapter import Adapter
from planmon.engines.mysql.dialect import MySqlDialect
from planmon.engines.mysql.probe import MySqlProbeSession
from planmon.model import Prediction, RegressionContext, Remediation

__all__ = ["ENGINE", "Adapter", "MySqlEngine"]


class MySqlEngine(MySqlDialect, Engine):
    adapter_type = Adapter
    proposer = staticmethod(remediation.propose)

    def make_probe_session(self, connection: Any, policy: SessionPolicy) -> ProbeSession:
        return MySqlProbeSession(connection, policy)

    def classify_probe(self, sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
        return probe_guard.classify_probe(sql, extra_functions=extra_functions)

    def predict(
        self,
        connect: ConnectionFactory | None,
        context: RegressionContext,
        record: Remediation,
        settings: Settings,
    ) -> Prediction:
        return Prediction.unavailable(
            "no prediction is available on MariaDB/MySQL: it has no hypothetical indexes"
        )


ENGINE = MySqlEngine()
