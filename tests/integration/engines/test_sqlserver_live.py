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
