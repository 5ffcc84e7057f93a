"""The SQL Server adapter on SQL Server 2019, 2022 and 2025 as they behave, against recorded result sets
(tests/fixtures/engines/sqlserver): the 2022 least-privilege grant, parameter-sensitive plan optimisation
variants, Query Store for secondary replicas (replica groups, temporary negative ids)."""

from __future__ import annotations

from datetime import datetime

import pytest

from planmon.engines.base import Aspect, AspectState
from planmon.engines.sqlserver.adapter import primary_replica_group, without_temporary_ids
from planmon.engines.sqlserver.dialect import bind, iso_datetime
from tests.unit.engines.test_sqlserver_adapter import QUERY_STORE_SALES, FakeServer, _adapter

PSP_WINDOW = (datetime(2026, 11, 23, 6, 0), datetime(2026, 11, 23, 8, 0))
REPLICA_WINDOW = (datetime(2026, 11, 23, 7, 0), datetime(2026, 11, 23, 7, 15))


def test_view_database_performance_state_alone_reads_query_store_on_2022() -> None:
    server = FakeServer({**QUERY_STORE_SALES, "database_permissions": "performance_state_only"})
    for adapter in _adapter(server):
        capabilities = adapter.capabilities()
    assert capabilities.aspects[Aspect.RUNTIME_STATS].state is AspectState.OK
    assert capabilities.details["databases"]["Sales"]["query_store_readable"] is True
    assert server.executed("query_store_options")


def test_on_2019_the_unknown_2022_permission_does_not_count_as_granted() -> None:
    server = FakeServer(
        {**QUERY_STORE_SALES, "server_properties": "sql2019", "database_permissions": "sql2019_denied"}
    )
    for adapter in _adapter(server):
        capabilities = adapter.capabilities()
    assert capabilities.details["databases"]["Sales"]["problem"]["status"] == "permission_denied"
    assert "VIEW DATABASE PERFORMANCE STATE" in capabilities.details["databases"]["Sales"]["problem"]["hint"]


PSP = {
    **QUERY_STORE_SALES,
    "query_store_runtime_stats": "psp",
    "query_store_plans": "psp",
    "query_store_query_variants": "psp",
}


def test_2022_variants_keep_their_own_query_ids_and_name_parent_and_dispatcher() -> None:
    server = FakeServer(PSP)
    for adapter in _adapter(server):
        stats = adapter.runtime_stats(*PSP_WINDOW)
    assert {s.query_key for s in stats} == {"21", "22", "23"}  # never folded into parent 20
    assert {(s.parent_query_key, s.dispatcher_plan_key) for s in stats} == {("20", "30")}
    assert "30" not in {s.plan_key for s in stats}  # the dispatcher plan records no runtime stats
    [(_, _, params)] = server.executed("query_store_query_variants")
    assert sorted((params or {}).values()) == [21, 22, 23]
    assert not server.executed("query_store_runtime_stats_2025")  # replica groups are 2025+


def test_2019_reads_no_variants() -> None:
    server = FakeServer({**QUERY_STORE_SALES, "server_properties": "sql2019"})
    for adapter in _adapter(server):
        stats = adapter.runtime_stats(*REPLICA_WINDOW)
    assert stats and all(s.parent_query_key is None for s in stats)
    assert not server.executed("query_store_query_variants")


REPLICAS = {
    **QUERY_STORE_SALES,
    "server_properties": "sql2025",
    "query_store_runtime_stats_2025": "replicas",
    "query_store_replicas": "two",
}


def test_2025_keeps_the_primary_replica_group_and_never_stores_a_temporary_id() -> None:
    server = FakeServer(REPLICAS)
    for adapter in _adapter(server):
        stats = adapter.runtime_stats(*REPLICA_WINDOW)
        notes = adapter.runtime_stats_notes()
    assert not server.executed("query_store_runtime_stats")
    assert [(s.query_key, s.plan_key, s.replica_group_id, s.executions) for s in stats] == [
        ("7", "11", 1, 10)
    ]
    assert "1 row(s) with a temporary (negative) query or plan id" in notes[0]
    assert "replica group 1 kept; 1 row(s) of replica group(s) 2 skipped" in notes[1]


def test_rows_of_two_replica_groups_are_never_pooled() -> None:
    from planmon.engines.sqlserver.adapter import aggregate_runtime_rows

    row = {
        "plan_id": 11,
        "query_id": 7,
        "runtime_stats_interval_id": 1,
        "execution_type": 0,
        "avg_cpu_time": 100.0,
    }
    stats = aggregate_runtime_rows(
        [
            {**row, "count_executions": 10, "replica_group_id": 1},
            {**row, "count_executions": 40, "replica_group_id": 2},
        ],
        database_name="Sales",
    )
    assert sorted((s.replica_group_id, s.executions) for s in stats) == [(1, 10), (2, 40)]


def test_primary_replica_group_after_a_failover_is_the_lowest_primary_seen_in_the_rows() -> None:
    replicas = [
        {"replica_group_id": 1, "role_type": 1},
        {"replica_group_id": 2, "role_type": 2},
        {"replica_group_id": 3, "role_type": 1},
    ]
    assert primary_replica_group(replicas[:2], []) == 1
    assert primary_replica_group(replicas, [{"replica_group_id": 3}, {"replica_group_id": 2}]) == 3
    assert primary_replica_group([], [{"replica_group_id": 2}, {"replica_group_id": 4}]) == 2
    assert primary_replica_group([], [{"replica_group_id": None}]) is None


def test_temporary_ids_are_counted_and_dropped() -> None:
    rows = [{"query_id": 7, "plan_id": 11}, {"query_id": -3, "plan_id": -9}, {"query_id": 8, "plan_id": -2}]
    kept, skipped = without_temporary_ids(rows)
    assert kept == rows[:1] and skipped == 2


@pytest.mark.parametrize("moment", [datetime(2026, 1, 2, 3, 4, 5, 678901), datetime(2026, 12, 11, 0, 0)])
def test_datetimes_are_sent_as_iso_8601_with_t_under_any_dateformat(moment: datetime) -> None:
    text, params = bind("SELECT 1 WHERE x < @at AND y IN (@ats)", {"at": moment, "ats": [moment]})
    assert params["at"] == params["ats_0"] == iso_datetime(moment)
    assert str(params["at"])[10] == "T" and len(str(params["at"])) == 23  # yyyy-mm-ddThh:mi:ss.mmm
    assert text == "SELECT 1 WHERE x < %(at)s AND y IN (%(ats_0)s)"
