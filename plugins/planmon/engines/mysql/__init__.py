"""MySQL 8 / MariaDB 10.6+: the engine object (``planmon.engines.get_engine("mysql")``).

``dialect`` quotes, classifies errors and sets sessions up; ``adapter`` collects (performance_schema
digests, EXPLAIN FORMAT=JSON, information_schema); ``probe`` runs probes; ``remediation`` proposes an
online index rebuild and ANALYZE TABLE.
"""

from __future__ import annotations

from typing import Any

from planmon.engines._base import Engine
from planmon.engines.base import ProbeSession, SessionPolicy
from planmon.engines.mysql import remediation
from planmon.engines.mysql.adapter import Adapter
from planmon.engines.mysql.dialect import MySqlDialect
from planmon.engines.mysql.probe import MySqlProbeSession

__all__ = ["ENGINE", "Adapter", "MySqlEngine"]


class MySqlEngine(MySqlDialect, Engine):
    adapter_type = Adapter
    proposer = staticmethod(remediation.propose)

    def make_probe_session(self, connection: Any, policy: SessionPolicy) -> ProbeSession:
        return MySqlProbeSession(connection, policy)


ENGINE = MySqlEngine()
