"""Read-only guard: classify SQL with sqlglot before planmon runs it on a monitored server.

Collector queries and user probes must only read. ``classify`` parses the text and says whether it
writes and why; ``check_read_only`` raises when it does (or when it cannot be parsed, since what
cannot be read cannot be trusted).

A SELECT can still act through the functions it calls (``SELECT pg_terminate_backend(pid)``,
``SELECT nextval('s')``, ``GET_LOCK``, ``OPENQUERY``): :func:`classify_probe`, used for user probes,
also refuses exactly one statement that calls a function known to change state, take locks, reach
other servers or read server files. planmon's own SQL files keep the plain check: they set session
settings with ``set_config`` on purpose (include/sql/postgres/session_setup.sql). User-defined
functions cannot be judged by name: on PostgreSQL and MariaDB the probe also runs in a read-only
transaction, which the server enforces.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from planmon.errors import ConfigError

# Statement kinds that only read. Anything else (DML, DDL, commands, transactions, SET, EXEC) is refused.
_READ_ONLY = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values)
_WRITES_INSIDE = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Into,
    exp.LockingProperty,
)


def classify(sql: str, *, dialect: str) -> tuple[bool, str]:
    """(is_read_only, reason) for ``sql`` in the sqlglot ``dialect``."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        return False, f"cannot be parsed as {dialect} SQL ({str(exc).splitlines()[0]})"
    if not statements:
        return False, "holds no statement"
    for statement in statements:
        if not isinstance(statement, _READ_ONLY):
            return False, f"is a {statement.key.upper()} statement, not a query"
        for node in statement.walk():
            if isinstance(node, _WRITES_INSIDE):
                return False, f"contains {node.key.upper()}"
            if isinstance(node, exp.Lock):
                return False, "takes row locks (FOR UPDATE/SHARE)"
    return True, "read-only query"


# Functions with side effects, by lower-case name (schema qualifiers are ignored). Not a complete list of
# what a server offers, but every built-in that signals, locks, writes, configures or leaves the server.
SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        # PostgreSQL: sessions and server control
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "pg_switch_wal", "pg_create_restore_point", "pg_promote", "pg_wal_replay_pause",
        "pg_wal_replay_resume", "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
        "pg_log_backend_memory_contexts", "pg_stat_reset", "pg_stat_reset_shared",
        "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
        "pg_stat_reset_slru", "pg_stat_reset_replication_slot", "pg_stat_statements_reset",
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "pg_drop_replication_slot", "pg_replication_origin_create", "pg_replication_origin_drop",
        "pg_import_system_collations", "pg_notify", "set_config",
        # PostgreSQL: sequences, transaction ids, advisory locks
        "nextval", "setval", "txid_current", "pg_current_xact_id",
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock",
        "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
        # PostgreSQL: files, large objects, other servers
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_file_write", "pg_file_rename",
        "pg_file_unlink", "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_from_bytea", "lo_put",
        "dblink", "dblink_exec", "dblink_connect", "dblink_send_query",
        # MySQL / MariaDB
        "get_lock", "release_lock", "release_all_locks", "load_file", "sys_exec", "sys_eval",
        "master_pos_wait", "source_pos_wait", "lastval",
        # SQL Server
        "openquery", "openrowset", "opendatasource", "openxml",
    }
)  # fmt: skip


def classify_probe(sql: str, *, dialect: str) -> tuple[bool, str]:
    """(is_read_only, reason) for a user probe: one read-only statement calling no side-effect function."""
    read_only, reason = classify(sql, dialect=dialect)
    if not read_only:
        return read_only, reason
    statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    if len(statements) != 1:
        return False, f"holds {len(statements)} statements; a probe is exactly one query"
    for node in statements[0].walk():
        name = _function_name(node)
        if name in SIDE_EFFECT_FUNCTIONS:
            return False, f"calls {name}(), which changes server state or reaches outside the query"
    return True, "read-only query"


def _function_name(node: Any) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):  # table functions
        return str(node.this.name).lower()
    return None


def check_read_only(sql: str, *, dialect: str, source: str) -> None:
    read_only, reason = classify(sql, dialect=dialect)
    if not read_only:
        raise ConfigError(
            f"{source}: refused, the SQL {reason}", hint="planmon only runs read-only queries here"
        )
