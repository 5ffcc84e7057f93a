"""Read-only guard: classify SQL with sqlglot before planmon runs it on a monitored server.

Collector queries and user probes must only read. ``classify`` parses the text and says whether it
writes and why; ``check_read_only`` raises when it does (or when it cannot be parsed, since what
cannot be read cannot be trusted).
"""

from __future__ import annotations

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


def check_read_only(sql: str, *, dialect: str, source: str) -> None:
    read_only, reason = classify(sql, dialect=dialect)
    if not read_only:
        raise ConfigError(
            f"{source}: refused, the SQL {reason}", hint="planmon only runs read-only queries here"
        )
