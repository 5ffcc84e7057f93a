"""Is the MySQL / MariaDB probe login fit to run probes? Its global privileges, read from ``SHOW
GRANTS`` once per probe session, through every role granted to it.

``SHOW GRANTS`` (for the current user) needs no privilege, works alike on MySQL 8 and MariaDB 10.x /
11.x, and lists the granted roles; ``information_schema.USER_PRIVILEGES`` does not fold in roles'
privileges and, for a login with global SELECT, lists every account's. Granted roles are followed:
MariaDB by ``SHOW GRANTS FOR role`` (allowed for a role granted to the current user), MySQL by ``SHOW
GRANTS FOR CURRENT_USER() USING role, ...``. A role whose grants cannot be read counts as too
powerful: planmon cannot tell, so it does not run probes through it.

Only global grants (``ON *.*``) are judged; the lines are parsed for privilege and role names only
(``SHOW GRANTS`` also prints password hashes: nothing else of a line is kept).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from planmon.engines.base import ProbePrivileges
from planmon.engines.mysql.dialect import MARIADB
from planmon.sql import MARKER

# Global privileges a probe login must not have, and what each allows (docs/probes.md, "The probe
# login"). PROCESS is not here: it shows other sessions' statements, it cannot kill them.
TOO_POWERFUL = {
    "ALL PRIVILEGES": "every privilege on every database",
    "SUPER": "kills other sessions, changes global settings, writes on a read-only server",
    "CONNECTION ADMIN": "kills other users' sessions (KILL) and gets past max_connections",
    "FILE": "reads and writes files on the server (LOAD_FILE(), SELECT ... INTO OUTFILE)",
    "SHUTDOWN": "stops the server",
    "RELOAD": "FLUSH, including FLUSH TABLES WITH READ LOCK, which blocks every write",
    "CREATE USER": "creates, drops, renames and locks accounts",
    "SYSTEM VARIABLES ADMIN": "changes global settings (SET GLOBAL)",
}

_GLOBAL_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON \*\.\* TO ", re.IGNORECASE)
_ROLE_GRANT = re.compile(r"^GRANT (?P<roles>`.*?) TO ", re.IGNORECASE)
_QUOTED = re.compile(r"`((?:[^`]|``)*)`(?:@`((?:[^`]|``)*)`)?")

LOGIN_QUERY = "/* planmon */ SELECT planmon.login FROM (SELECT CURRENT_USER() AS login) AS planmon"

Run = Callable[[str], list[str]]


def read_privileges(connection: Any, flavor: str) -> ProbePrivileges:
    """The login's excess global privileges, its own and its roles' (a few ``SHOW GRANTS``, marked)."""

    def run(statement: str) -> list[str]:
        cursor = connection.cursor()
        try:
            cursor.execute(statement if statement.startswith(MARKER) else f"{MARKER} {statement}")
            return [str(row[0]) for row in cursor.fetchall()]
        finally:
            cursor.close()

    login = run(LOGIN_QUERY)[0]
    return ProbePrivileges(login, tuple(excess_privileges(run, flavor)))


def excess_privileges(run: Run, flavor: str) -> list[str]:
    """What ``run`` (one statement -> the first column of its rows) shows the login may do too much of."""
    lines = run("SHOW GRANTS")
    privileges = global_privileges(lines)
    roles = granted_roles(lines)
    unreadable: list[str] = []
    if roles and flavor == MARIADB:
        privileges |= _mariadb_role_privileges(run, lines, unreadable)
    elif roles:
        using = ", ".join(_quote(role) for role in roles)
        try:
            privileges |= global_privileges(run(f"SHOW GRANTS FOR CURRENT_USER() USING {using}"))
        except Exception as exc:  # the driver's error: which one does not change the verdict
            unreadable += [f"{role} ({type(exc).__name__})" for role in roles]
    excess = [f"{name}: {TOO_POWERFUL[name]}" for name in TOO_POWERFUL if name in privileges]
    excess += [
        f"granted role {role} whose grants cannot be read (make it the default role, SET DEFAULT ROLE, so "
        "SHOW GRANTS lists them, or revoke it)"
        for role in unreadable
    ]
    return excess


def _mariadb_role_privileges(run: Run, own: list[str], unreadable: list[str]) -> set[str]:
    """The global privileges of the roles ``own`` (the login's ``SHOW GRANTS``) grants, nested ones
    too. MariaDB's ``SHOW GRANTS`` already lists the grants of the enabled (default) role and the
    roles under it; only the others are asked for, and ``SHOW GRANTS FOR role`` of a role that is not
    enabled needs SELECT on the mysql schema."""
    privileges: set[str] = set()
    covered = grantees(own)
    pending, seen = granted_roles(own), set()
    while pending:
        role = pending.pop(0)
        if role in seen:
            continue
        seen.add(role)
        if role in covered:  # its grants are in the lines already, and so are the roles it has
            continue
        try:
            lines = run(f"SHOW GRANTS FOR {_quote(role)}")
        except Exception as exc:  # the driver's error: which one does not change the verdict
            unreadable.append(f"{role} ({type(exc).__name__})")
            continue
        covered |= grantees(lines)
        privileges |= global_privileges(lines)
        pending += granted_roles(lines)
    return privileges


def grantees(lines: Iterable[str]) -> set[str]:
    """Who the ``SHOW GRANTS`` lines grant to, spelled as :func:`granted_roles` spells roles."""
    names: set[str] = set()
    for line in lines:
        _, to, rest = line.strip().partition(" TO ")
        quoted = _QUOTED.match(rest.strip()) if to else None
        if quoted is not None:
            name, host = quoted.groups()
            names.add(name.replace("``", "`") + (f"@{host.replace('``', '`')}" if host else ""))
    return names


def global_privileges(lines: Iterable[str]) -> set[str]:
    """Privilege names granted ``ON *.*`` in ``SHOW GRANTS`` lines, spelled with spaces, upper case
    (MySQL's dynamic ``CONNECTION_ADMIN`` is MariaDB's ``CONNECTION ADMIN``; ``ALL`` is ``ALL
    PRIVILEGES``)."""
    names: set[str] = set()
    for line in lines:
        match = _GLOBAL_GRANT.match(line.strip())
        if match is None:
            continue
        for name in match["privileges"].split(","):
            normal = " ".join(name.replace("_", " ").upper().split())
            names.add("ALL PRIVILEGES" if normal == "ALL" else normal)
    return names


def granted_roles(lines: Iterable[str]) -> list[str]:
    """The roles a ``SHOW GRANTS`` output grants (``GRANT `r` TO ...``, MySQL ``GRANT `r`@`%` TO ...``),
    as the server spells them (MySQL: ``r@%``)."""
    roles: list[str] = []
    for line in lines:
        match = _ROLE_GRANT.match(line.strip())
        if match is None or " ON " in match["roles"].upper():
            continue
        for name, host in _QUOTED.findall(match["roles"]):
            role = name.replace("``", "`") + (f"@{host.replace('``', '`')}" if host else "")
            if role not in roles:
                roles.append(role)
    return roles


def _quote(role: str) -> str:
    """A role as ``SHOW GRANTS FOR`` takes it: `name` or, MySQL, `name`@`host`."""
    name, at, host = role.rpartition("@") if "@" in role else (role, "", "")
    parts = [name, host] if at else [role]
    return "@".join("`" + part.replace("`", "``") + "`" for part in parts)
