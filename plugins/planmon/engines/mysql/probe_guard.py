"""The MySQL / MariaDB probe guard: sqlglot's mysql dialect, an allow-list of built-in functions.

A probe passes as one SELECT without INTO (variables, OUTFILE, DUMPFILE), locking clauses, user
variable assignments (``@x := ...``), executable comments (``/*! ... */``, ``/*M! ... */``: the
server runs what sqlglot reads as a comment) or backslashes (whether ``\'`` ends a string depends on
the server's sql_mode), calling only functions of ``probe_functions.txt``.
The deny families below override that list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from pathlib import Path

from sqlglot import exp

from planmon.sqlguard import SqlglotProbeRules, classify_sqlglot_probe, deny_family

DENY = (
    deny_family(
        "takes, releases or inspects named locks",
        r"get_lock", r"release_(all_)?locks?", r"is_(free|used)_lock",
    ),
    deny_family("reads a server file", r"load_file"),
    deny_family("evaluates an expression in a loop (BENCHMARK burns CPU on the target)", r"benchmark"),
    deny_family("runs an operating-system command", r"sys_exec", r"sys_eval"),
    deny_family(
        "waits on replication positions",
        r"master_pos_wait", r"source_pos_wait", r"master_gtid_wait", r"wait_for_executed_gtid_set",
        r"wait_until_sql_thread_after_gtids",
    ),
    deny_family(
        "reads or moves a sequence", r"nextval", r"setval", r"lastval", r"next_value_for", r"last_insert_id"
    ),
)  # fmt: skip

_EXECUTABLE_COMMENT = re.compile(r"/\*\s*(M?!)", re.IGNORECASE)
_OPTIMIZER_HINT = re.compile(r"/\*\+")
_INTO_FILE = re.compile(r"\bINTO\s+(OUTFILE|DUMPFILE)\b", re.IGNORECASE)


def _text_problem(sql: str) -> str | None:
    if "\\" in sql:
        return (
            "holds a backslash, which MySQL and MariaDB read as an escape in strings or not depending on "
            "sql_mode (NO_BACKSLASH_ESCAPES), so the guard cannot know where a string ends; write the "
            "probe without one (LIKE 'a!_%' ESCAPE '!' instead of LIKE 'a\\_%')"
        )
    comment = _EXECUTABLE_COMMENT.search(sql)
    if comment is not None:
        return (
            f"holds an executable comment /*{comment.group(1)} ... */, which MySQL and MariaDB run as SQL; "
            "write the probe without it"
        )
    if _OPTIMIZER_HINT.search(sql):
        return (
            "holds an optimizer hint comment /*+ ... */, whose SET_VAR(...) changes session variables "
            "such as the statement timeout; write the probe without it"
        )
    into = _INTO_FILE.search(sql)
    if into is not None:
        return f"writes a server file (SELECT ... INTO {into.group(1).upper()}); remove the INTO clause"
    return None


def _node_problem(node: exp.Expr) -> str | None:
    if isinstance(node, exp.PropertyEQ):
        return f"assigns a user variable ({node.sql(dialect='mysql')}); probes may only read"
    return None


@functools.cache
def rules() -> SqlglotProbeRules:
    return SqlglotProbeRules.from_allow_list(
        Path(__file__).with_name("probe_functions.txt"),
        dialect="mysql",
        label="MySQL/MariaDB",
        deny=DENY,
        check_text=_text_problem,
        check_node=_node_problem,
    )


def classify_probe(sql: str, *, extra_functions: Collection[str] = ()) -> tuple[bool, str]:
    """(accepted, reason) for a MySQL / MariaDB probe; the reason of a refusal names the construct."""
    return classify_sqlglot_probe(sql, rules(), extra_functions=extra_functions)
