"""The probes planmon ships, one per engine feature it depends on (docs/probes.md, "Built-in probes").

Their SQL lives in ``include/sql/<engine>/probes/<name>.sql`` (header comment: what it reads, minimum
version, permission). They are synced like the probe directory's files, under the source
``builtin``; a file probe with the same name replaces one (e.g. to change its schedule or
thresholds), and ``PLANMON_PROBES_BUILTIN=false`` turns them all off.
"""

from __future__ import annotations

from typing import Any

from planmon.model.probes import ProbeDefinition
from planmon.sql import load_sql

_BUILTINS: tuple[dict[str, Any], ...] = (
    {
        "name": "builtin.connectivity",
        "description": "The target answers a trivial query (connection, login and server are fine).",
        "kind": "health",
        "files": {"postgres": "connectivity", "mysql": "connectivity", "sqlserver": "connectivity"},
        "operator": "!=",
        "critical": 1,
        "schedule": "*/5 * * * *",
        "timeout_seconds": 10,
    },
    {
        "name": "builtin.query_store_state",
        "description": "Query Store: 3 off, 2 read-only (capture stopped), 1 at 90% of its size limit.",
        "kind": "health",
        "files": {"sqlserver": "query_store_state"},
        "operator": ">=",
        "warning": 1,
        "critical": 2,
        "schedule": "*/15 * * * *",
        "timeout_seconds": 10,
    },
    {
        "name": "builtin.pg_stat_statements_present",
        "description": "pg_stat_statements: 2 preloaded and created in this database (needed), else missing.",
        "kind": "health",
        "files": {"postgres": "pg_stat_statements_present"},
        "operator": "<",
        "critical": 2,
        "schedule": "*/15 * * * *",
        "timeout_seconds": 10,
    },
    {
        "name": "builtin.pg_stat_statements_fill",
        "description": "Percent of pg_stat_statements.max in use; at 100% entries are evicted and lost.",
        "kind": "health",
        "files": {"postgres": "pg_stat_statements_fill"},
        "operator": ">=",
        "warning": 90,
        "critical": 99,
        "schedule": "*/15 * * * *",
        "timeout_seconds": 10,
    },
    {
        "name": "builtin.performance_schema_state",
        "description": "performance_schema: 3 off, 2 digest consumer off or digest table full, 1 at 90%.",
        "kind": "health",
        "files": {"mysql": "performance_schema_state"},
        "operator": ">=",
        "warning": 1,
        "critical": 2,
        "schedule": "*/15 * * * *",
        "timeout_seconds": 10,
    },
)


def builtin_probes() -> list[ProbeDefinition]:
    """The built-in probe definitions, their SQL read from include/sql (checked read-only on load)."""
    probes = []
    for spec in _BUILTINS:
        fields = {key: value for key, value in spec.items() if key != "files"}
        fields["sql"] = {engine: load_sql(engine, f"probes/{name}") for engine, name in spec["files"].items()}
        probes.append(ProbeDefinition.model_validate(fields))
    return probes
