"""Engine-native SQL kept as SQL: ``include/sql/<engine>/<name>.sql``, loaded by name.

Each file opens with ``--`` header lines (``reads:``, ``minimum version:``, ``permission:``) and then
one statement that starts with the ``/* planmon */`` marker, so planmon's own statements can be told
apart in the server's statistics and excluded from analysis. The text returned starts at the marker.
Every file is checked read-only when it is loaded (see ``planmon.sqlguard``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from planmon.errors import ConfigError
from planmon.sqlguard import check_read_only

MARKER = "/* planmon */"
REQUIRED_HEADERS = ("reads:", "minimum version:", "permission:")
SQLGLOT_DIALECTS = {"sqlserver": "tsql", "postgres": "postgres", "mysql": "mysql"}

_PACKAGED = Path(__file__).parent / "_sql"  # where a built wheel carries include/sql
_PROJECT = Path(__file__).resolve().parents[2] / "include" / "sql"  # editable install / checkout


def sql_root() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _PROJECT


@functools.cache
def load_sql(engine: str, name: str) -> str:
    """The statement of ``include/sql/<engine>/<name>.sql``, from its ``/* planmon */`` marker on."""
    path = sql_root() / engine / f"{name}.sql"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"planmon ships no SQL file {engine}/{name}.sql", hint=f"looked in {sql_root()}"
        ) from exc
    header, marker, body = text.partition(MARKER)
    if not marker:
        raise ConfigError(f"{path}: the statement must start with the {MARKER} marker")
    missing = [h for h in REQUIRED_HEADERS if h not in header.lower()]
    if missing:
        raise ConfigError(f"{path}: the header comment lacks {', '.join(missing)}")
    statement = (marker + body).strip()
    check_read_only(statement, dialect=SQLGLOT_DIALECTS[engine], source=str(path))
    return statement
