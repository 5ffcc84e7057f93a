"""Is the SQL Server probe login fit to run probes? Its server roles and the server and database
permissions that act on other sessions or on the server, read once per probe session.

SQL Server has no read-only transaction (docs/probes.md): the login is the last line of defence, so
it is judged on what it *can* do, through any role: ``sysadmin`` / ``CONTROL SERVER`` (everything),
``securityadmin`` / ``ALTER ANY LOGIN`` (grants itself the rest), ``ALTER ANY CONNECTION`` (``KILL``,
held by ``processadmin``), ``SHUTDOWN`` and ``ALTER SETTINGS`` (``serveradmin``: stops or reconfigures
the server), and in the probe's database ``db_owner`` / ``CONTROL`` (anything in it).

Verified against recorded result sets only: there is no SQL Server here.
"""

from __future__ import annotations

from typing import Any

from planmon.engines.base import ProbePrivileges
from planmon.sql import load_sql

# column of probe_privileges.sql -> what holding it means
TOO_POWERFUL = {
    "is_sysadmin": "member of sysadmin: every permission on the server",
    "has_control_server": "CONTROL SERVER: every permission on the server",
    "is_securityadmin": "member of securityadmin: grants server permissions, also to itself",
    "has_alter_any_login": "ALTER ANY LOGIN: changes logins' passwords and server roles",
    "has_alter_any_connection": "ALTER ANY CONNECTION: kills other sessions (KILL)",
    "has_shutdown": "SHUTDOWN: stops the server",
    "has_alter_settings": "ALTER SETTINGS: changes server configuration (sp_configure)",
    "is_db_owner": "member of db_owner in the probe's database: anything in it",
    "has_control_database": "CONTROL on the probe's database: anything in it",
}


def read_privileges(connection: Any) -> ProbePrivileges:
    """The login's excess privileges (one statement of built-in functions)."""
    cursor = connection.cursor()
    try:
        cursor.execute(load_sql("sqlserver", "probe_privileges"))
        row = cursor.fetchone()
        columns = [str(column[0]) for column in cursor.description or ()]
    finally:
        cursor.close()
    if row is None:
        raise ValueError("the privilege check returned no row")
    return judge(dict(zip(columns, row, strict=True)))


def judge(row: dict[str, Any]) -> ProbePrivileges:
    """The verdict on the row of ``probe_privileges.sql``; NULL (unknown) counts as not held."""
    missing = [column for column in TOO_POWERFUL if column not in row]
    if missing:
        raise ValueError(f"the privilege check returned no column {', '.join(missing)}")
    held = [column for column in TOO_POWERFUL if row[column] == 1]
    if {"is_sysadmin", "has_control_server"} & set(held):  # these imply every other flag: say only them
        held = [column for column in held if column in ("is_sysadmin", "has_control_server")]
    return ProbePrivileges(str(row.get("login_name") or "?"), tuple(TOO_POWERFUL[column] for column in held))
