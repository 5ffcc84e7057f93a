"""Read-only guard: classify SQL with sqlglot before planmon runs it on a monitored server.

planmon's own SQL files (include/sql) keep the plain check: ``classify`` parses the text and says
whether it writes and why; ``check_read_only`` raises when it does (or when it cannot be parsed,
since what cannot be read cannot be trusted). They set session settings with ``set_config`` on
purpose (include/sql/postgres/session_setup.sql).

User probes are judged by an allow-list instead (docs/probes.md, "Read-only, always"): each engine's
guard, ``Engine.classify_probe`` (engines/<engine>/probe_guard.py), accepts one SELECT calling only
reviewed functions. The parts they share live here: the deny families that override every
allow-list, and the walk over a sqlglot tree used for MySQL/MariaDB and SQL Server (PostgreSQL
parses with PostgreSQL's own parser, pglast).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

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


# -- user probes --------------------------------------------------------------------------------
# A probe is judged by an allow-list, not a deny-list: one SELECT, only allow-listed functions. The
# engine packages hold the parts that differ (parser, allow-lists): engines/<engine>/probe_guard.py.
# What follows is shared by them: the deny families that override every allow-list, and the walk
# over a sqlglot tree that the MySQL/MariaDB and SQL Server guards use.

ACCEPTED = (True, "read-only query")


@dataclass(frozen=True, slots=True)
class DenyFamily:
    """Functions that act (what they do, their names as a pattern): refused whatever a list says."""

    does: str
    pattern: re.Pattern[str]

    def matches(self, name: str) -> bool:
        return self.pattern.fullmatch(name.lower()) is not None


def deny_family(does: str, *patterns: str) -> DenyFamily:
    return DenyFamily(does, re.compile("|".join(f"(?:{p})" for p in patterns)))


def denied(name: str, families: Sequence[DenyFamily]) -> DenyFamily | None:
    return next((family for family in families if family.matches(name)), None)


def refused(reason: str) -> tuple[bool, str]:
    return False, reason


def read_names(path: Path) -> frozenset[str]:
    """The names of an allow-list file: one a line, ``#`` comments and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


NOT_A_QUERY = "a probe is exactly one SELECT (or WITH ... SELECT) that only reads"
ASK_A_DBA = (
    "use a built-in function or a system view instead, or ask a DBA to review it for "
    "PLANMON_PROBE_ALLOWED_FUNCTIONS (docs/probes.md)"
)


@dataclass(frozen=True, slots=True)
class SqlglotProbeRules:
    """One engine's probe rules for the shared sqlglot walk (:func:`classify_sqlglot_probe`)."""

    dialect: str  # sqlglot's name
    label: str  # the engine as a DBA names it
    functions: frozenset[str]  # allowed built-in functions, upper case
    qualified_functions: frozenset[str]  # allowed schema-qualified ones, ``SCHEMA.NAME`` upper case
    deny: tuple[DenyFamily, ...]
    check_text: Callable[[str], str | None]  # what the raw text alone refuses (e.g. MySQL's /*! */)
    check_node: Callable[[exp.Expr], str | None]  # engine-specific constructs (hints, variables)

    @classmethod
    def from_allow_list(
        cls,
        path: Path,
        *,
        dialect: str,
        label: str,
        deny: tuple[DenyFamily, ...],
        check_text: Callable[[str], str | None],
        check_node: Callable[[exp.Expr], str | None],
    ) -> SqlglotProbeRules:
        """Rules whose allowed functions are the names in ``path`` (``SCHEMA.NAME`` ones qualified)."""
        names = read_names(path)
        return cls(
            dialect=dialect,
            label=label,
            functions=frozenset(name for name in names if "." not in name),
            qualified_functions=frozenset(name for name in names if "." in name),
            deny=deny,
            check_text=check_text,
            check_node=check_node,
        )


_STATEMENT_QUERIES = (exp.Select, exp.Union, exp.Intersect, exp.Except)
_NEVER_INSIDE = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
    exp.Set, exp.Use, exp.Transaction, exp.Commit, exp.Rollback, exp.Execute, exp.LockingProperty,
)  # fmt: skip


TOO_DEEP = "is nested too deeply for the guard to read; write the probe with fewer nested levels"


def classify_sqlglot_probe(
    sql: str, rules: SqlglotProbeRules, *, extra_functions: Collection[str] = ()
) -> tuple[bool, str]:
    """(accepted, reason) for a probe in a sqlglot dialect: one SELECT, allow-listed functions only."""
    try:
        return _classify_sqlglot_probe(sql, rules, extra_functions)
    except RecursionError:  # sqlglot parses and walks recursively
        return refused(TOO_DEEP)


def _classify_sqlglot_probe(
    sql: str, rules: SqlglotProbeRules, extra_functions: Collection[str]
) -> tuple[bool, str]:
    text_problem = rules.check_text(sql)
    if text_problem is not None:
        return refused(text_problem)
    try:
        statements = [s for s in sqlglot.parse(sql, read=rules.dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return refused(f"cannot be parsed as {rules.label} SQL ({first}); {NOT_A_QUERY}")
    if len(statements) != 1:
        return refused(f"holds {len(statements)} statements; {NOT_A_QUERY}")
    statement = statements[0]
    if not isinstance(statement, _STATEMENT_QUERIES):
        return refused(
            f"is a {_statement_kind(statement, sql, rules.dialect)} statement, not a query; {NOT_A_QUERY}"
        )
    extra = frozenset(name.upper() for name in extra_functions)
    for node in statement.walk():
        problem = _sqlglot_construct(node, rules) or _sqlglot_function(node, rules, extra)
        if problem is not None:
            return refused(problem)
    return ACCEPTED


def _statement_kind(statement: exp.Expr, sql: str, dialect: str) -> str:
    """The statement's kind; for what sqlglot read as an expression (``FLUSH STATUS``: a column and
    its alias), the word the text begins with, which is what the server reads."""
    if isinstance(statement, (exp.Command, exp.DML, exp.DDL, *_NEVER_INSIDE)):
        return _kind(statement)
    tokens = sqlglot.tokenize(sql, read=dialect)
    return tokens[0].text.upper() if tokens else _kind(statement)


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.name).upper() or "COMMAND"
    return node.key.upper()


def _sqlglot_construct(node: exp.Expr, rules: SqlglotProbeRules) -> str | None:
    if isinstance(node, exp.Into):
        return "selects INTO a table, variable or file (SELECT ... INTO writes); remove the INTO clause"
    if isinstance(node, exp.Lock):
        return "takes row locks (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE); remove the locking clause"
    if isinstance(node, exp.CTE) and not isinstance(node.this, _STATEMENT_QUERIES):
        return f"has a WITH query that is a {_kind(node.this)}, not a SELECT; {NOT_A_QUERY}"
    if isinstance(node, _NEVER_INSIDE):
        return f"contains a {_kind(node)} statement; {NOT_A_QUERY}"
    return rules.check_node(node)


# Operators and syntax: MySQL and SQL Server have no user-defined operators, so only calls are judged.
_OPERATOR_SYNTAX = (exp.Binary, exp.Unary, exp.Connector, exp.Predicate, exp.Case)


_CALLED = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def sqlglot_function_names(node: exp.Expr, dialect: str) -> tuple[str, ...]:
    """The names a function node goes by (upper case): as written for a function sqlglot does not
    know; for one it models, the dialect's own spelling first (DATE_FORMAT, not sqlglot's
    TIME_TO_STR), then sqlglot's names. () for nodes that are not calls."""
    if isinstance(node, exp.Anonymous):
        return (str(node.name).upper(),)
    if isinstance(node, _OPERATOR_SYNTAX):  # sqlglot models AND, a + b, a BETWEEN x AND y as Func too
        return ()
    if isinstance(node, exp.Func):
        spelled = _CALLED.match(node.sql(dialect=dialect))
        names = [spelled.group(1).upper()] if spelled else []
        return tuple(dict.fromkeys([*names, node.sql_name().upper(), *(n.upper() for n in node.sql_names())]))
    return ()


def _qualifier(node: exp.Expr) -> str | None:
    """The schema a call is qualified with: ``dbo.f()`` -> DBO; ``FROM db.sys.dm_x()`` -> SYS (a
    table function in another database of the same server); ``db.dbo.f()`` in an expression keeps
    its whole qualifier, which matches no allowed schema."""
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        parts = [part.upper() for part in _identifier_parts(parent.this)]
        return ".".join(parts) if len(parts) != 1 else parts[0]  # server.db.schema: no schema of ours
    if isinstance(parent, exp.Table) and parent.this is node:  # a table function: FROM sys.dm_x(...)
        schema = parent.args.get("db")
        return str(schema.name).upper() if schema else None
    return None


def _identifier_parts(node: exp.Expr) -> list[str]:
    """``a.b`` -> [a, b] left to right, by identifier (a quoted name with a dot stays one part)."""
    if isinstance(node, exp.Identifier):
        return [str(node.this)]
    if isinstance(node, exp.Column):
        return [str(part.this) for part in node.parts]
    if isinstance(node, exp.Dot):
        return _identifier_parts(node.this) + _identifier_parts(node.expression)
    return [node.sql(dialect=""), "?"]  # anything else never names an allowed schema


def _sqlglot_function(node: exp.Expr, rules: SqlglotProbeRules, extra: frozenset[str]) -> str | None:
    names = sqlglot_function_names(node, rules.dialect)
    if not names:
        return None
    for name in names:
        family = denied(name, rules.deny)
        if family is not None:
            return f"calls {name}(), which {family.does}; probes may only read"
    qualifier = _qualifier(node)
    if qualifier is not None:
        qualified = f"{qualifier}.{names[0]}"
        if qualified in rules.qualified_functions or qualified in extra:
            return None
        return (
            f"calls {qualified}(), a function outside the {rules.label} built-ins the guard knows, "
            f"so what it does cannot be judged; {ASK_A_DBA}"
        )
    if any(name in rules.functions or name in extra for name in names):
        return None
    return (
        f"calls {names[0]}(), which is not on the {rules.label} allow-list of read-only functions; "
        f"{ASK_A_DBA}"
    )


def check_read_only(sql: str, *, dialect: str, source: str) -> None:
    read_only, reason = classify(sql, dialect=dialect)
    if not read_only:
        raise ConfigError(
            f"{source}: refused, the SQL {reason}", hint="planmon only runs read-only queries here"
        )
