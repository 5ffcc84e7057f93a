"""The SQL Server probe guard: sqlglot's tsql dialect, an allow-list of built-in functions.

SQL Server has no read-only transaction, so this guard (with a login that can only read) is the
defence: one SELECT without INTO, EXEC, dynamic SQL, other servers (OPENROWSET, OPENQUERY,
OPENDATASOURCE), OPENXML, locking table hints, sequences (NEXT VALUE FOR), or reserved words used
as names (``SELECT 1 DELETE FROM t`` is two statements to SQL Server, one SELECT with an alias to
sqlglot), calling only the functions of ``probe_functions.txt``. The deny families below override that list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from pathlib import Path

from sqlglot import exp

from planmon.sqlguard import SqlglotProbeRules, classify_sqlglot_probe, deny_family, read_names

DENY = (
    deny_family(
        "reaches another server or data source",
        r"openrowset", r"openquery", r"opendatasource", r"openxml",
    ),
    deny_family("executes SQL text or procedures", r"sp_.*", r"xp_.*", r"exec(ute)?"),
    deny_family(
        "reads server files (traces, audits, extended events, logs, backups)",
        r"fn_xe_file_target_read_file", r"fn_get_audit_file", r"fn_trace_gettable", r"fn_dblog",
        r"fn_dump_dblog", r"fn_xe_.*", r"fn_trace_.*",
    ),
    deny_family("reads or moves a sequence", r"next_value_for", r"nextvaluefor"),
)  # fmt: skip

# Table hints that only read without taking more locks; every other hint is refused by name.
READING_HINTS = frozenset(
    {"NOLOCK", "READUNCOMMITTED", "READCOMMITTED", "READPAST", "NOWAIT", "INDEX", "FORCESEEK",
     "FORCESCAN", "NOEXPAND"}
)  # fmt: skip


@functools.cache
def _reserved() -> frozenset[str]:
    return read_names(Path(__file__).with_name("reserved_words.txt"))


def _node_problem(node: exp.Expr) -> str | None:
    if (
        isinstance(node, exp.Identifier)
        and not node.args.get("quoted")
        and str(node.this).upper() in _reserved()
    ):
        word = str(node.this).upper()
        return (
            f"uses the reserved word {word} as a name; SQL Server reads it as the start of another "
            f"statement (no ';' is needed there); end the probe after its query, or write [{word}] if "
            "it is a name"
        )
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Dot):
        return (
            f"reads {node.sql('tsql')} by a four-part name, through a linked server (another server); "
            "probe each server through its own target"
        )
    if isinstance(node, exp.WithTableHint):
        for hint in node.expressions:
            name = (hint.name if isinstance(hint, exp.Var | exp.Identifier) else hint.sql("tsql")).upper()
            base = name.split("(", 1)[0].strip()
            if base not in READING_HINTS:
                return (
                    f"uses the table hint {name}, which takes or holds locks; use NOLOCK or no hint "
                    "(allowed hints: " + ", ".join(sorted(READING_HINTS)) + ")"
                )
    if isinstance(node, exp.NextValueFor):
        return "takes a value from a sequence (NEXT VALUE FOR); probes may only read"
    return None


# Caught in the text as well, before parsing: OPENROWSET(BULK ...) is syntax sqlglot cannot parse, and
# the refusal should name the construct rather than a parse error.
_OTHER_SERVERS = re.compile(r"\b(OPENROWSET|OPENQUERY|OPENDATASOURCE|OPENXML)\s*\(", re.IGNORECASE)


def _text_problem(sql: str) -> str | None:
    found = _OTHER_SERVERS.search(sql)
    if found is not None:
        name = found.group(1).upper()
        return f"calls {name}(), which reaches another server or data source; probes may only read"
    return None


@functools.cache
def rules() -> SqlglotProbeRules:
    return SqlglotProbeRules.from_allow_list(
        Path(__file__).with_name("probe_functions.txt"),
        dialect="tsql",
        label="SQL Server",
        deny=DENY,
        check_text=_text_problem,
        check_node=_node_problem,
    )


def classify_probe(sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
    """(accepted, reason) for a SQL Server probe; the reason of a refusal names the construct."""
    return classify_sqlglot_probe(sql, rules(), extra_functions=extra_functions)
