"""Is the PostgreSQL probe login fit to run probes? Its role attributes and the predefined roles it is
a member of (directly or through other roles), read once per probe session.

Too powerful (docs/probes.md, "The probe login", says why each one):

- ``rolsuper``: bypasses every permission check; a read-only transaction does not stop
  ``pg_terminate_backend()``, ``pg_read_file()`` or ``COPY ... TO PROGRAM``;
- ``rolreplication``: streams every row of every table and creates replication slots that hold WAL;
- ``rolbypassrls``: reads past row security, and probe results and alerts leave the server;
- ``rolcreaterole``: creates roles and grants itself memberships (before 16: of any non-superuser
  role, so of the roles below);
- members of ``pg_signal_backend`` (cancel and terminate other sessions), ``pg_read_server_files`` /
  ``pg_write_server_files`` (files on the server), ``pg_execute_server_program`` (programs on the
  server) and ``pg_checkpoint`` (a CHECKPOINT on demand, an I/O storm on a busy server).
"""

from __future__ import annotations

from typing import Any

from planmon.engines.base import ProbePrivileges
from planmon.sql import load_sql

TOO_POWERFUL_ATTRIBUTES = {
    "rolsuper": "superuser (rolsuper): bypasses every permission check",
    "rolreplication": "REPLICATION (rolreplication): streams every table and creates replication slots",
    "rolbypassrls": "BYPASSRLS (rolbypassrls): reads past row-level security policies",
    "rolcreaterole": "CREATEROLE (rolcreaterole): creates roles and grants memberships, also to itself",
}
TOO_POWERFUL_ROLES = {
    "pg_signal_backend": "cancels and terminates other sessions",
    "pg_read_server_files": "reads files on the server",
    "pg_write_server_files": "writes files on the server",
    "pg_execute_server_program": "runs programs on the server",
    "pg_checkpoint": "runs CHECKPOINT",
}


def read_privileges(cursor: Any) -> ProbePrivileges:
    """The login's excess privileges: one catalog query on ``cursor`` (the probe session runs it in
    its read-only transaction, under the probe's timeouts)."""
    cursor.execute(
        load_sql("postgres", "probe_privileges"), {"roles": sorted(TOO_POWERFUL_ROLES)}, prepare=False
    )
    row = cursor.fetchone()
    columns = [column.name for column in cursor.description]
    if row is None:  # current_user has no pg_roles row: cannot happen for a logged-in role
        raise ValueError("the probe login is not in pg_roles")
    return judge(dict(zip(columns, row, strict=True)))


def judge(row: dict[str, Any]) -> ProbePrivileges:
    """The verdict on one row of ``probe_privileges.sql`` (pure: unit-testable on recorded rows)."""
    login = str(row["login"])
    if row["rolsuper"]:  # a superuser is a member of every role: the rest says nothing more
        return ProbePrivileges(login, (TOO_POWERFUL_ATTRIBUTES["rolsuper"],))
    excess = [text for attribute, text in TOO_POWERFUL_ATTRIBUTES.items() if row[attribute]]
    excess += [
        f"member of {role}: {TOO_POWERFUL_ROLES[role]}"
        for role in row["member_of"] or ()
        if role in TOO_POWERFUL_ROLES
    ]
    return ProbePrivileges(login, tuple(excess))
