"""The probe login checks' verdicts on recorded answers: MySQL 8 / MariaDB ``SHOW GRANTS`` lines (the
formats of the MySQL 8.0 and MariaDB 10.11 reference manuals and of the harness's MariaDB), PostgreSQL
rows of ``probe_privileges.sql``. The live servers' answers are tested in
tests/integration/probes/test_probe_login_*.py; MySQL 8 is not available here."""

from __future__ import annotations

import pytest

from planmon.engines.mysql.dialect import MARIADB, MYSQL
from planmon.engines.mysql.probe_privileges import (
    excess_privileges,
    global_privileges,
    granted_roles,
)
from planmon.engines.postgres.probe_privileges import judge

MYSQL8_ROOT = [
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, SHUTDOWN, PROCESS, FILE, REFERENCES, "
    "INDEX, ALTER, SHOW DATABASES, SUPER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION "
    "SLAVE, REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, "
    "EVENT, TRIGGER, CREATE TABLESPACE, CREATE ROLE, DROP ROLE ON *.* TO `root`@`localhost` "
    "WITH GRANT OPTION",
    "GRANT APPLICATION_PASSWORD_ADMIN,AUDIT_ADMIN,BACKUP_ADMIN,BINLOG_ADMIN,CONNECTION_ADMIN,"
    "SYSTEM_VARIABLES_ADMIN,XA_RECOVER_ADMIN ON *.* TO `root`@`localhost` WITH GRANT OPTION",
    "GRANT PROXY ON ``@`` TO `root`@`localhost` WITH GRANT OPTION",
]
MARIADB_ROOT = [
    "GRANT ALL PRIVILEGES ON *.* TO `root`@`127.0.0.1` WITH GRANT OPTION",
    "GRANT PROXY ON ``@`%` TO `root`@`127.0.0.1` WITH GRANT OPTION",
]
# a password hash is part of the line: nothing of it may reach a finding
MARIADB_PROBE = [
    "GRANT PROCESS ON *.* TO `planmon_probe`@`%` IDENTIFIED BY PASSWORD "
    "'*0123456789ABCDEF0123456789ABCDEF01234567'",
    "GRANT SELECT ON `performance_schema`.* TO `planmon_probe`@`%`",
    "GRANT SELECT (`state`, `id`) ON `shop`.`orders` TO `planmon_probe`@`%`",
]


def answers(recorded: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    sent: list[str] = []

    def run(statement: str) -> list[str]:
        sent.append(statement)
        if statement not in recorded:
            raise PermissionError(f"denied: {statement}")
        return recorded[statement]

    return run, sent


def test_mysql8_root_is_refused_for_each_dangerous_privilege_static_and_dynamic() -> None:
    run, _ = answers({"SHOW GRANTS": MYSQL8_ROOT})
    names = [finding.split(":")[0] for finding in excess_privileges(run, MYSQL)]
    assert names == ["SUPER", "CONNECTION ADMIN", "FILE", "SHUTDOWN", "RELOAD", "CREATE USER",
                     "SYSTEM VARIABLES ADMIN"]  # fmt: skip


def test_mariadb_root_has_all_privileges() -> None:
    run, _ = answers({"SHOW GRANTS": MARIADB_ROOT})
    assert excess_privileges(run, MARIADB) == ["ALL PRIVILEGES: every privilege on every database"]


def test_a_reader_with_process_and_column_grants_is_fit_and_no_hash_is_kept() -> None:
    assert global_privileges(MARIADB_PROBE) == {"PROCESS"}
    run, _ = answers({"SHOW GRANTS": MARIADB_PROBE})
    assert excess_privileges(run, MARIADB) == []


def test_mariadb_roles_are_followed_through_nested_grants() -> None:
    run, sent = answers(
        {
            "SHOW GRANTS": ["GRANT `monitoring` TO `p`@`%`", "GRANT PROCESS ON *.* TO `p`@`%`"],
            "SHOW GRANTS FOR `monitoring`": [
                "GRANT `ops` TO `monitoring`",
                "GRANT USAGE ON *.* TO `monitoring`",
            ],
            "SHOW GRANTS FOR `ops`": ["GRANT CONNECTION ADMIN, BINLOG MONITOR ON *.* TO `ops`"],
        }
    )
    assert excess_privileges(run, MARIADB) == [
        "CONNECTION ADMIN: kills other users' sessions (KILL) and gets past max_connections"
    ]
    assert sent == ["SHOW GRANTS", "SHOW GRANTS FOR `monitoring`", "SHOW GRANTS FOR `ops`"]


def test_a_role_whose_grants_cannot_be_read_counts_as_too_powerful() -> None:
    run, _ = answers({"SHOW GRANTS": ["GRANT `secret` TO `p`@`%`", "GRANT PROCESS ON *.* TO `p`@`%`"]})
    (finding,) = excess_privileges(run, MARIADB)
    assert finding.startswith("granted role secret (PermissionError) whose grants cannot be read")


def test_mariadb_default_role_grants_are_read_from_show_grants_itself() -> None:
    """Recorded on MariaDB 10.11: with r_outer the default role, SHOW GRANTS lists its grants and those
    of r_inner under it, while SHOW GRANTS FOR r_inner is denied (no SELECT on the mysql schema)."""
    run, sent = answers(
        {
            "SHOW GRANTS": [
                "GRANT `r_outer` TO `p`@`%`",
                MARIADB_PROBE[0].replace("`planmon_probe`", "`p`"),  # its password hash too
                "GRANT `r_inner` TO `r_outer`",
                "GRANT USAGE ON *.* TO `r_outer`",
                "GRANT SHUTDOWN ON *.* TO `r_inner`",
                "SET DEFAULT ROLE `r_outer` FOR `p`@`%`",
            ]
        }
    )
    assert excess_privileges(run, MARIADB) == ["SHUTDOWN: stops the server"]
    assert sent == ["SHOW GRANTS"]


def test_mysql8_roles_are_expanded_with_using() -> None:
    own = ["GRANT USAGE ON *.* TO `probe`@`%`", "GRANT `monitor`@`%`,`dba`@`%` TO `probe`@`%`"]
    assert granted_roles(own) == ["monitor@%", "dba@%"]
    run, sent = answers(
        {
            "SHOW GRANTS": own,
            "SHOW GRANTS FOR CURRENT_USER() USING `monitor`@`%`, `dba`@`%`": [
                "GRANT PROCESS, SHUTDOWN ON *.* TO `probe`@`%`",
                "GRANT SELECT ON `performance_schema`.* TO `probe`@`%`",
                *own[1:],
            ],
        }
    )
    assert excess_privileges(run, MYSQL) == ["SHUTDOWN: stops the server"]
    assert sent[-1] == "SHOW GRANTS FOR CURRENT_USER() USING `monitor`@`%`, `dba`@`%`"


def row(**values: object) -> dict[str, object]:
    return {"login": "planmon_probe", "rolsuper": False, "rolreplication": False, "rolbypassrls": False,
            "rolcreaterole": False, "member_of": [], **values}  # fmt: skip


def test_postgres_superuser_says_only_superuser() -> None:
    verdict = judge(row(login="postgres", rolsuper=True, rolreplication=True, member_of=["pg_monitor"]))
    assert verdict.excess == ("superuser (rolsuper): bypasses every permission check",)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, []),
        ({"member_of": ["pg_signal_backend"]}, ["member of pg_signal_backend"]),
        ({"rolreplication": True, "member_of": ["pg_checkpoint", "pg_monitor"]},
         ["REPLICATION (rolreplication)", "member of pg_checkpoint"]),
        ({"rolcreaterole": True}, ["CREATEROLE (rolcreaterole)"]),
        ({"rolbypassrls": True}, ["BYPASSRLS (rolbypassrls)"]),
    ],
)  # fmt: skip
def test_postgres_attributes_and_memberships(values: dict[str, object], expected: list[str]) -> None:
    verdict = judge(row(**values))
    assert [finding.split(":")[0] for finding in verdict.excess] == expected
    assert verdict.too_powerful is bool(expected)
