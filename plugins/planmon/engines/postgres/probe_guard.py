"""The PostgreSQL probe guard: PostgreSQL's own parser (pglast) and allow-lists, not a deny-list.

A probe passes only as one SELECT (or WITH ... SELECT, VALUES, TABLE) without INTO, locking clauses
or data-modifying WITH queries, built from syntax the guard knows (every node of the parse tree is of
an allowed kind), calling only allow-listed functions, using only operator symbols of pg_catalog and
casting only to built-in types. pglast resolves what the lexer resolves (``U&"\\0070g_..."``, quoted
and upper-case names, comments), so the guard judges the names the server will look up.

The allow-lists ship with the package because ``planmon probes add`` judges a probe without a
server: ``probe_functions.txt`` and ``probe_operators.txt`` are generated from pg_proc and
pg_operator of PostgreSQL 15 by ``scripts/pg_probe_allowlist.py`` (functions whose every overload is
immutable or stable, less the deny families below), ``probe_types.txt`` from pg_type. On top of
them sits :data:`REVIEWED_VOLATILE`, volatile functions that only read. The deny families override
all of it: several functions that act are marked stable in pg_proc (``table_to_xml`` executes a
query, ``txid_current`` assigns a transaction id).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from pglast import ast, parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.parser import ParseError, scan

from planmon.sqlguard import (
    ACCEPTED,
    ASK_A_DBA,
    NOT_A_QUERY,
    TOO_DEEP,
    DenyFamily,
    denied,
    deny_family,
    read_names,
    refused,
)

_HERE = Path(__file__).parent

# Families of functions that act, whatever pg_proc's volatility says. Names are lower case, judged
# after the parser resolved quoting and escapes; schema qualifiers are judged apart.
DENY: tuple[DenyFamily, ...] = (
    deny_family(
        "executes SQL text or reads whole tables by name (a query inside a string escapes the guard)",
        r"(query|cursor|table|schema|database)_to_xml(schema|_and_xmlschema)?",
        r"dblink.*", r"ts_stat", r"ts_rewrite",
    ),
    deny_family(
        "signals, cancels or controls server processes",
        r"pg_terminate_backend", r"pg_cancel_backend", r"pg_signal_backend",
        r"pg_log_backend_memory_contexts",
        r"pg_reload_conf", r"pg_rotate_logfile.*", r"pg_promote", r"pg_wal_replay_(pause|resume)",
        r"pg_(backup_start|backup_stop|start_backup|stop_backup)",
    ),
    deny_family(
        "reads or writes server files or large objects",
        r"pg_read_(binary_)?file.*", r"pg_ls_.*", r"pg_stat_file", r"lo_.*", r"lo(read|write)", r"pg_file_.*",
        r"pg_current_logfile", r"pg_hba_file_rules", r"pg_ident_file_mappings", r"pg_show_all_file_settings",
    ),
    deny_family("changes settings", r"set_config", r"setseed"),
    deny_family("takes or releases advisory locks", r"pg_(try_)?advisory_.*"),
    deny_family("reads or moves a sequence", r"nextval", r"setval", r"currval", r"lastval"),
    deny_family(
        "resets statistics or session state",
        r"(?!.*reset_time$).*reset.*", r"pg_stat_clear_snapshot", r"pg_stat_force_next_flush",
    ),
    deny_family(
        "writes WAL, emits messages or assigns transaction ids",
        r"pg_logical_emit_message", r"pg_notify", r"pg_switch_wal", r"pg_create_restore_point",
        r"pg_replication_origin_(?!oid$).*", r"pg_(create|drop|copy)_.*replication_slot",
        r"pg_replication_slot_advance", r"pg_logical_slot_.*", r"txid_current",
        r"pg_current_xact_id", r"pg_export_snapshot",
    ),
    deny_family(
        "changes the catalog, runs maintenance or is a language or wrapper internal",
        r"binary_upgrade_.*", r"pg_import_system_collations", r"pg_nextoid", r"pg_stop_making_pinned_objects",
        r"brin_.*summarize.*", r"gin_clean_pending_list", r"pg_extension_config_dump",
        r".*_validator", r".*_handler",  # language and wrapper internals: no probe calls them
    ),
)  # fmt: skip

# Volatile in pg_proc, reviewed to only read (or to wait, bounded by the probe's statement timeout).
REVIEWED_VOLATILE = frozenset(
    {
        "clock_timestamp", "timeofday", "random", "gen_random_uuid",
        "pg_sleep", "pg_sleep_for", "pg_sleep_until",  # the statement timeout ends them
        "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
        "pg_database_size", "pg_tablespace_size",
        "pg_current_wal_lsn", "pg_current_wal_flush_lsn", "pg_current_wal_insert_lsn",
        "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
        "pg_is_in_recovery", "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state",
        "pg_blocking_pids", "pg_safe_snapshot_blocking_pids", "pg_lock_status",
        "pg_control_checkpoint", "pg_control_system", "pg_control_recovery", "pg_control_init",
        "pg_notification_queue_usage", "pg_jit_available", "pg_partition_tree", "pg_partition_ancestors",
        "pg_get_backend_memory_contexts", "pg_get_shmem_allocations", "pg_prepared_xact",
        "pg_xact_status", "txid_status", "pg_xact_commit_timestamp", "pg_last_committed_xact",
        "pg_stat_have_stats", "current_query", "pg_collation_actual_version",
        "pg_database_collation_actual_version", "pg_stat_get_recovery_prefetch",
    }
)  # fmt: skip

TABLESAMPLE_METHODS = frozenset({"system", "bernoulli"})
_BETWEEN = frozenset(
    {
        A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }
)  # fmt: skip
CATALOG = "pg_catalog"

# Parse-tree nodes a probe may be built from (pglast class names). Anything else is refused by name:
# statements other than SELECT, INTO, locking clauses, and syntax the guard has not been reviewed for.
_ALLOWED_NODES = frozenset(
    {
        "RawStmt", "SelectStmt", "ResTarget", "ColumnRef", "A_Star", "A_Const", "String", "Integer",
        "Float", "Boolean", "BitString", "ParamRef", "FuncCall", "NamedArgExpr", "A_Expr", "BoolExpr",
        "NullTest", "BooleanTest", "CaseExpr", "CaseWhen", "CoalesceExpr", "MinMaxExpr", "SQLValueFunction",
        "TypeCast", "TypeName", "CollateClause", "A_Indirection", "A_Indices", "A_ArrayExpr", "RowExpr",
        "SubLink", "RangeVar", "RangeSubselect", "RangeFunction", "RangeTableSample", "RangeTableFunc",
        "RangeTableFuncCol", "ColumnDef", "JoinExpr", "Alias", "WithClause", "CommonTableExpr",
        "CTESearchClause", "CTECycleClause", "SortBy", "WindowDef", "GroupingSet", "GroupingFunc",
        "XmlExpr", "XmlSerialize",
    }
)  # fmt: skip


@functools.cache
def _names(filename: str) -> frozenset[str]:
    return read_names(_HERE / filename)


def catalog_functions() -> frozenset[str]:
    return _names("probe_functions.txt")


@functools.cache
def allowed_functions() -> frozenset[str]:
    """The catalog's list and the reviewed volatile ones, less every deny family (even if listed)."""
    candidates = catalog_functions() | REVIEWED_VOLATILE
    return frozenset(name for name in candidates if denied(name, DENY) is None)


def classify_probe(sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
    """(accepted, reason) for a PostgreSQL probe; the reason of a refusal names the construct."""
    problem = _probe_problem(sql, frozenset(extra_functions))
    return ACCEPTED if problem is None else refused(problem)


def _probe_problem(sql: str, extra: frozenset[str]) -> str | None:
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return f"cannot be parsed as PostgreSQL SQL ({exc}); {NOT_A_QUERY}"
    if len(statements) != 1:
        return f"holds {len(statements)} statements; {NOT_A_QUERY}"
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = _statement_kind(statement) if statement is not None else "empty"
        return f"is a {kind} statement, not a query; {NOT_A_QUERY}"
    judge = _Judge(allowed_functions(), extra)
    try:
        problems = (judge.problem(node) for node in _walk(statement))
        return _hint_comment(sql) or next((problem for problem in problems if problem is not None), None)
    except RecursionError:  # the walk is recursive
        return TOO_DEEP


def _hint_comment(sql: str) -> str | None:
    """pg_hint_plan reads ``/*+ ... */`` comments, and its ``Set(...)`` hint changes settings for the
    statement (``Set(statement_timeout 0)`` would lift the probe's timeout)."""
    for token in scan(sql):  # offsets in characters
        if token.name == "C_COMMENT" and sql[token.start : token.start + 3] == "/*+":
            return (
                "holds a hint comment /*+ ... */, which pg_hint_plan reads and whose Set(...) changes "
                "settings; write the probe without it"
            )
    return None


def _statement_kind(node: ast.Node) -> str:
    """``DeleteStmt`` -> ``DELETE``, ``VariableSetStmt`` -> ``VARIABLE SET``: a readable kind."""
    name = type(node).__name__.removesuffix("Stmt")
    spaced = "".join(
        f" {c}" if c.isupper() and i and not name[i - 1].isupper() else c for i, c in enumerate(name)
    )
    return spaced.upper()


def _walk(node: Any) -> Iterator[ast.Node]:
    """Every node under ``node`` (itself first), through lists and tuples."""
    if isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for field in node:
            yield from _walk(getattr(node, field))


def _parts(names: Any) -> tuple[str, ...]:
    return tuple(str(part.sval) if isinstance(part, ast.String) else "*" for part in names or ())


class _Judge:
    def __init__(self, functions: frozenset[str], extra: frozenset[str]) -> None:
        self.functions = functions
        self.extra = extra

    def problem(self, node: ast.Node) -> str | None:
        structural = _structure_problem(node)
        if structural is not None:
            return structural
        if isinstance(node, ast.FuncCall):
            return self.function_problem(_parts(node.funcname))
        return _name_problem(node)

    def function_problem(self, parts: tuple[str, ...]) -> str | None:
        name = parts[-1]
        family = denied(name, DENY)
        if family is not None:
            return f"calls {'.'.join(parts)}(), which {family.does}; probes may only read"
        qualified = ".".join(parts)
        if len(parts) > 1 and (len(parts) > 2 or parts[0] != CATALOG):
            if qualified in self.extra:
                return None
            return (
                f"calls {qualified}(), a function outside pg_catalog: a user-defined function can do "
                f"anything, so the guard refuses it; {ASK_A_DBA}"
            )
        if name in self.functions or name in self.extra:
            return None
        return (
            f"calls {qualified}(), which is not on the PostgreSQL allow-list of built-in read-only "
            f"functions (names are case-sensitive once quoted); {ASK_A_DBA}"
        )


def _structure_problem(node: ast.Node) -> str | None:
    """Statements, INTO, locking clauses, data-modifying WITH queries, syntax not allowed."""
    kind = type(node).__name__
    if isinstance(node, ast.SelectStmt):
        return _select_problem(node)
    if isinstance(node, ast.CommonTableExpr) and not isinstance(node.ctequery, ast.SelectStmt):
        query = _statement_kind(node.ctequery) if node.ctequery is not None else "empty"
        return f"has a data-modifying WITH query {node.ctename!r} ({query}); {NOT_A_QUERY}"
    if kind.endswith("Stmt"):
        return f"contains a {_statement_kind(node)} statement; {NOT_A_QUERY}"
    if kind not in _ALLOWED_NODES:
        return f"uses {kind}, SQL syntax the probe guard does not allow; write the probe as a plain SELECT"
    return None


def _name_problem(node: ast.Node) -> str | None:
    """Operators (also of ANY/ALL subqueries and ORDER BY ... USING), cast types, sampling methods."""
    operator = _operator_of(node)
    if operator:
        return _operator_problem(operator)
    if isinstance(node, ast.TypeName):
        return _type_problem(_parts(node.names))
    if isinstance(node, ast.RangeTableSample):
        method = ".".join(_parts(node.method))
        if method not in TABLESAMPLE_METHODS:
            return (
                f"samples with TABLESAMPLE {method}, a sampling method the guard does not know; "
                "use the built-in SYSTEM or BERNOULLI"
            )
    return None


def _operator_of(node: ast.Node) -> tuple[str, ...]:
    """The (qualified) operator a node applies, () when none or when named by a keyword (BETWEEN
    compares with >= and <=)."""
    if isinstance(node, ast.A_Expr) and node.kind not in _BETWEEN:
        return _parts(node.name)
    if isinstance(node, ast.SubLink):
        return _parts(node.operName)
    if isinstance(node, ast.SortBy):
        return _parts(node.useOp)
    return ()


def _select_problem(node: ast.SelectStmt) -> str | None:
    if node.intoClause is not None:
        return "selects INTO a new table (SELECT ... INTO writes); remove the INTO clause"
    if node.lockingClause:
        return (
            "takes row locks (FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE); "
            "remove the locking clause"
        )
    return None


def _operator_problem(parts: tuple[str, ...]) -> str | None:
    symbol = parts[-1]
    if len(parts) > 1 and (len(parts) > 2 or parts[0] != CATALOG):
        return (
            f"uses OPERATOR({'.'.join(parts)}), an operator outside pg_catalog: a user-defined operator "
            "calls a function the guard cannot judge; use the built-in operator"
        )
    if symbol not in _names("probe_operators.txt"):
        return f"uses the operator {symbol}, which no built-in type defines; use a built-in operator"
    return None


def _type_problem(parts: tuple[str, ...]) -> str | None:
    if len(parts) > 1 and (len(parts) > 2 or parts[0] != CATALOG):
        return (
            f"uses the type {'.'.join(parts)}, a type outside pg_catalog: its input and cast functions "
            "are user code; cast to a built-in type"
        )
    if parts[-1] not in _names("probe_types.txt"):
        return f"uses the type {parts[-1]}, which is not a built-in type; cast to a built-in type"
    return None
