"""The SQL Server adapter against a live server at PLANMON_TEST_MSSQL_URL (skipped when it is not set).

The URL is a SQLAlchemy URL, e.g. ``mssql+pymssql://planmon:<password>@localhost:1433/Sales``; with a
database the adapter reads that one, without it every online user database. Nothing is written: the
workload statement below is a catalog read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from planmon.config import Settings
from planmon.engines.base import Aspect, AspectState
from planmon.engines.sqlserver.adapter import Adapter
from planmon.plans.parse import parse_plan
from planmon.sql import MARKER

pytestmark = pytest.mark.mssql


def _connector(url: str, settings: Settings) -> Callable[[str | None], Any]:
    import pymssql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)

    def connect(database: str | None) -> Any:
        return pymssql.connect(
            server=parsed.host or "localhost",
            port=str(parsed.port or 1433),
            user=parsed.username,
            password=parsed.password,
            database=database or parsed.database or "master",
            login_timeout=10,
            timeout=math.ceil(settings.statement_timeout_ms / 1000),
        )

    return connect


@pytest.fixture
def adapter(mssql_url: str) -> Iterator[Adapter]:
    from sqlalchemy.engine import make_url

    settings = Settings(collect_row_limit=200)
    database = make_url(mssql_url).database
    connect = _connector(mssql_url, settings)
    workload = connect(database)  # give Query Store / the plan cache at least one statement of the last hour
    try:
        cursor = workload.cursor()
        cursor.execute("SELECT COUNT(*) FROM sys.objects WHERE type = N'U'")
        cursor.fetchall()
    finally:
        workload.close()
    live = Adapter(connect, target_name="live", databases=(database,) if database else (), settings=settings)
    try:
        yield live
    finally:
        live.close()


def _last_hour() -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(tzinfo=None)
    return end - timedelta(hours=1), end


def test_capabilities(adapter: Adapter) -> None:
    capabilities = adapter.capabilities()
    assert int(capabilities.server_version.split(".")[0]) >= 13
    assert set(capabilities.aspects) == set(Aspect)
    for aspect, status in capabilities.aspects.items():
        if status.state is not AspectState.OK:
            assert status.hint, f"{aspect} is {status.state} without a hint"
    assert capabilities.backfillable == (capabilities.details["runtime_stats_source"] == "query_store")
    json.dumps(dict(capabilities.details), default=str)
    assert adapter.statements_sent() > 0


def test_runtime_stats_for_the_last_hour(adapter: Adapter) -> None:
    capabilities = adapter.capabilities()
    if not capabilities.available(Aspect.RUNTIME_STATS):
        pytest.skip(f"runtime stats unavailable: {capabilities.aspects[Aspect.RUNTIME_STATS].hint}")
    stats = adapter.runtime_stats(*_last_hour())  # may be empty: QUERY_CAPTURE_MODE = AUTO skips trivia
    from_query_store = capabilities.details["runtime_stats_source"] == "query_store"
    for record in stats:
        assert record.cumulative is not from_query_store
        assert record.executions >= 0 and record.errors <= record.executions
        assert MARKER not in (record.query_text or ""), "planmon's own statements are excluded"
        if from_query_store:
            assert record.interval_start is not None and record.plan_key and record.plan_key.isdigit()
            assert record.cpu_us_stdev is None or record.cpu_us_stdev >= 0


def test_plans(adapter: Adapter) -> None:
    capabilities = adapter.capabilities()
    if not capabilities.available(Aspect.PLANS):
        pytest.skip(f"plans unavailable: {capabilities.aspects[Aspect.PLANS].hint}")
    stats = adapter.runtime_stats(*_last_hour())[:5]
    if not stats:
        pytest.skip("no statement in the last hour to capture a plan for")
    captured, failures = adapter.plans(stats)
    assert captured or failures
    for plan in captured:
        assert plan.body_format == "showplan_xml"
        parse_plan(plan.body, engine="sqlserver")  # read as text, parsed whatever its depth
    for failure in failures:
        assert failure.reason


def test_variants_replica_groups_and_temporary_ids_as_this_server_has_them(adapter: Adapter) -> None:
    """SQL Server 2022+: PSP variants keep their own query ids and name parent and dispatcher; 2025 / Azure:
    one replica group per database, never a negative (temporary) id."""
    capabilities = adapter.capabilities()
    if capabilities.details["runtime_stats_source"] != "query_store":
        pytest.skip("Query Store is not readable here")
    stats = adapter.runtime_stats(*_last_hour())
    dispatchers = {record.dispatcher_plan_key for record in stats if record.dispatcher_plan_key}
    for record in stats:
        assert not record.query_key.startswith("-") and not (record.plan_key or "").startswith("-")
        assert (record.parent_query_key is None) == (record.dispatcher_plan_key is None)
        assert record.plan_key not in dispatchers  # a dispatcher plan records no runtime statistics
        if record.parent_query_key is not None:
            assert capabilities.details["major_version"] >= 16 or capabilities.details["engine_edition"] in (
                5,
                8,
            )
    for database in {record.database_name for record in stats}:
        groups = {record.replica_group_id for record in stats if record.database_name == database}
        assert len(groups) == 1, f"{database}: replica groups {groups} pooled in one read"


def test_remediation_reads_forcing_state_on_this_version(mssql_url: str, adapter: Adapter) -> None:
    """The version is read before any version-gated file (SQL Server 2016 has no plan_forcing_type_desc);
    on 2022+ variants and hints are read too (hints need VIEW SERVER PERFORMANCE STATE)."""
    from sqlalchemy.engine import make_url

    from planmon.engines.sqlserver import remediation

    capabilities = adapter.capabilities()
    if capabilities.details["runtime_stats_source"] != "query_store":
        pytest.skip("Query Store is not readable here")
    stats = adapter.runtime_stats(*_last_hour())
    if not stats:
        pytest.skip("no statement in the last hour")
    record = stats[0]
    connection = _connector(mssql_url, Settings())(record.database_name or make_url(mssql_url).database)
    try:
        state = remediation.read_state(connection, int(record.query_key))
    finally:
        connection.close()
    assert state.major_version == capabilities.details["major_version"]
    assert state.plan(int(record.plan_key or 0)) is not None
    assert not (set(p.plan_id for p in state.plans if p.query_id is None) & state.dispatcher_plan_ids)


@pytest.mark.parametrize("language", ["British", "Deutsch", "us_english"])
def test_iso_datetimes_are_read_the_same_under_every_login_language(mssql_url: str, language: str) -> None:
    from planmon.engines.sqlserver.dialect import bind

    moment = datetime(2026, 2, 1, 13, 4, 5, 670000)  # day 1, month 2: a swap would read 2 January
    # (.670: a value datetime holds exactly; it rounds to 1/300 s)
    connection = _connector(mssql_url, Settings())(None)
    try:
        cursor = connection.cursor()
        cursor.execute(f"SET LANGUAGE {language}")  # one of three fixed names above
        cursor.execute(*bind("SELECT CAST(@at AS datetime) AS at", {"at": moment}))
        assert cursor.fetchall()[0][0] == moment
    finally:
        connection.close()
