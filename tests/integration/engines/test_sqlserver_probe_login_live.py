"""The SQL Server probe login check against a live server at PLANMON_TEST_MSSQL_URL (skipped when it is
not set; no SQL Server was available where this was written, so this test has not run yet). The
verdict must agree with what the server says of the same login, asked separately."""

from __future__ import annotations

import pytest

from planmon.engines import get_engine
from tests.integration.engines.test_sqlserver_live import _connector

pytestmark = pytest.mark.mssql


def test_the_login_check_agrees_with_the_server(mssql_url: str) -> None:
    from sqlalchemy.engine import make_url

    from planmon.config import Settings

    connect = _connector(mssql_url, Settings())
    database = make_url(mssql_url).database
    session = get_engine("sqlserver").probe_session(connect, 5000, database)
    try:
        verdict = session.privileges()
        assert session.privileges() is verdict  # read once per session
    finally:
        session.close()
    check = connect(database)
    try:
        cursor = check.cursor()
        cursor.execute("SELECT SUSER_SNAME(), IS_SRVROLEMEMBER('sysadmin'), IS_ROLEMEMBER('db_owner')")
        login, sysadmin, db_owner = cursor.fetchone()
    finally:
        check.close()
    assert verdict.login == login
    if sysadmin == 1:
        assert verdict.excess[0] == "member of sysadmin: every permission on the server"
    elif db_owner == 1:
        assert "member of db_owner in the probe's database: anything in it" in verdict.excess
    else:  # e.g. compose's planmon_monitor (VIEW SERVER STATE, VIEW DATABASE STATE)
        assert all("sysadmin" not in reason and "db_owner" not in reason for reason in verdict.excess)
