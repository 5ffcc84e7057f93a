"""Idempotent bulk upserts keyed on natural keys, for SQLite, PostgreSQL and SQL Server.

Re-running a task for the same interval must leave the same rows, so every write goes through
:func:`upsert`: ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL, ``MERGE ... WITH
(HOLDLOCK)`` on SQL Server (HOLDLOCK makes the match-then-insert atomic, so two writers of one key
cannot both insert). Large PostgreSQL batches are COPYed into a temporary table and merged with one
set-based statement, which is several times faster than row-wise inserts.

How a conflicting row's columns are updated is chosen per column (:class:`Merge`), so "first seen"
can keep the oldest value, "last seen" the newest, and a stored plan body is never rewritten.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Table, bindparam, case, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

BATCH_ROWS = 1000  # rows per statement: bounded memory and parameter counts on every backend
POSTGRES_COPY_THRESHOLD = 2000  # from this many rows, COPY + one INSERT ... SELECT beats VALUES lists


class Merge(enum.Enum):
    """What a column becomes when the row already exists."""

    REPLACE = "replace"  # the new value
    KEEP = "keep"  # the stored value, or the new one where nothing is stored
    GREATEST = "greatest"  # the larger of both (e.g. last_seen)
    LEAST = "least"  # the smaller of both (e.g. first_seen)


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    merge: Mapping[str, Merge] | None = None,
) -> int:
    """Insert ``rows`` or update the rows with the same ``key``; return the number of input rows.

    Columns not in ``key`` and not named in ``merge`` are REPLACEd. Runs inside the caller's
    transaction: a failure leaves nothing of the batch behind.
    """
    if not rows:
        return 0
    # Every writer touches keys in the same order, so two concurrent upserts of overlapping keys
    # wait for each other instead of deadlocking.
    rows = _sorted_by_key(rows, key)
    columns = list(rows[0].keys())
    rules = {name: (merge or {}).get(name, Merge.REPLACE) for name in columns if name not in key}
    dialect = connection.dialect.name
    if dialect == "postgresql" and len(rows) >= POSTGRES_COPY_THRESHOLD:
        _postgres_copy_merge(connection, table=table, rows=rows, columns=columns, key=key, rules=rules)
    elif dialect == "sqlite":
        _sqlite_upsert(connection, table=table, rows=rows, columns=columns, key=key, rules=rules)
    elif dialect == "postgresql":
        statement = _on_conflict_statement(dialect, table, key, rules)
        for batch in _batches(rows):
            connection.execute(statement, list(batch))
    elif dialect == "mssql":
        statement = mssql_merge_statement(
            table, columns=columns, key=key, rules=rules, dialect=connection.dialect
        )
        for batch in _batches(rows):
            connection.execute(statement, list(batch))
    else:
        raise NotImplementedError(f"planmon's repository does not support the {dialect} dialect")
    return len(rows)


def _sorted_by_key(rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> list[Mapping[str, Any]]:
    try:
        return sorted(rows, key=itemgetter(*key))
    except TypeError:  # a key column holds None beside values: None sorts last
        return sorted(rows, key=lambda row: tuple(_sortable(row[name]) for name in key))


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is None, "" if value is None else value)


def _batches(rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def _merged(rule: Merge, stored: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[Any]:
    if rule is Merge.REPLACE:
        return new
    if rule is Merge.KEEP:
        return func.coalesce(stored, new)
    if rule is Merge.GREATEST:
        return case((new > stored, new), else_=stored)
    return case((new < stored, new), else_=stored)


def _on_conflict_statement(dialect: str, table: Table, key: Sequence[str], rules: Mapping[str, Merge]) -> Any:
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    excluded = insert.excluded
    updates = {name: _merged(rule, table.c[name], excluded[name]) for name, rule in rules.items()}
    if not updates:
        return insert.on_conflict_do_nothing(index_elements=list(key))
    return insert.on_conflict_do_update(index_elements=list(key), set_=updates)


def _sqlite_upsert(
    connection: Connection,
    *,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    columns: list[str],
    key: Sequence[str],
    rules: Mapping[str, Merge],
) -> None:
    """Per batch, ``INSERT ... ON CONFLICT DO NOTHING`` first, and ``DO UPDATE`` only when the driver
    says some rows already existed.

    SQLite runs DO UPDATE at about half the speed of a plain insert even when nothing conflicts,
    while DO NOTHING costs what an insert costs; most batches (new intervals) never conflict, and
    once one batch of a call did, the rest go straight to DO UPDATE (a retried task re-writes all).
    Re-applying the update to rows the first pass just inserted changes nothing: every merge rule
    returns the new value when stored and new are equal. Statements are compiled once and get plain
    tuples: per-row SQLAlchemy parameter handling would cost more than SQLite's own work. Values go
    through the bind processors SQLAlchemy would use (e.g. its datetime text format), so rows read
    back and compare exactly as if it had written them.
    """
    insert_new = _compiled_sqlite(connection, sqlite.insert(table).on_conflict_do_nothing(), columns)
    merge_existing = _compiled_sqlite(
        connection, _on_conflict_statement("sqlite", table, key, rules), columns
    )
    order, sql_insert_new = insert_new
    order_merge, sql_merge_existing = merge_existing
    if order != order_merge:  # pragma: no cover - both statements bind the same VALUES list
        raise RuntimeError(f"parameter order differs: {order} vs {order_merge}")
    dialect = connection.dialect
    values_of = itemgetter(*order)
    converters = [
        (position, _memoized(processor))
        for position, name in enumerate(order)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    existing_seen = False  # a re-run conflicts everywhere: after the first conflict, merge directly
    for batch in _batches(rows):
        parameters: list[Any] = [values_of(row) for row in batch]
        if converters:
            parameters = [_converted(values, converters) for values in parameters]
        if existing_seen:
            connection.exec_driver_sql(sql_merge_existing, parameters)
            continue
        inserted = connection.exec_driver_sql(sql_insert_new, parameters).rowcount
        if inserted != len(parameters):  # some keys existed (or the driver could not tell)
            connection.exec_driver_sql(sql_merge_existing, parameters)
            existing_seen = True


def _compiled_sqlite(connection: Connection, statement: Any, columns: list[str]) -> tuple[list[str], str]:
    compiled = statement.compile(dialect=connection.dialect, column_keys=columns)
    order = list(compiled.positiontup or ())
    if sorted(order) != sorted(columns):  # pragma: no cover - guards a SQLAlchemy behaviour change
        raise RuntimeError(f"unexpected parameters {order} for columns {columns}")
    return order, str(compiled)


def _memoized(processor: Any) -> Any:
    """Bind processors are pure; interval timestamps repeat across plans, so cache their results."""
    cache: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        if value is None:
            return None
        try:
            return cache[value]
        except KeyError:
            cache[value] = converted = processor(value)
            return converted
        except TypeError:  # unhashable value (JSON): convert without caching
            return processor(value)

    return process


def _converted(values: tuple[Any, ...], converters: list[tuple[int, Any]]) -> tuple[Any, ...]:
    mutable = list(values)
    for position, process in converters:
        mutable[position] = process(mutable[position])
    return tuple(mutable)


def _postgres_copy_merge(
    connection: Connection,
    *,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    columns: list[str],
    key: Sequence[str],
    rules: Mapping[str, Merge],
) -> None:
    """COPY rows into a temporary twin of ``table``, then merge them with one INSERT ... SELECT."""
    preparer = connection.dialect.identifier_preparer
    staging = f"planmon_staging_{table.name}"
    quoted_columns = ", ".join(preparer.quote(name) for name in columns)
    connection.execute(
        text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.quote(staging)} "
            f"(LIKE {preparer.format_table(table)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    connection.execute(text(f"TRUNCATE {preparer.quote(staging)}"))
    raw = connection.connection.driver_connection
    copy_sql = f"COPY {preparer.quote(staging)} ({quoted_columns}) FROM STDIN"
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row([json.dumps(row[n]) if n in json_columns else row[n] for n in columns])
    assignments = ", ".join(
        f"{preparer.quote(name)} = "
        + _render_merge_sql(rule, f"stored.{preparer.quote(name)}", f"EXCLUDED.{preparer.quote(name)}")
        for name, rule in rules.items()
    )
    conflict = ", ".join(preparer.quote(name) for name in key)
    action = f"DO UPDATE SET {assignments}" if assignments else "DO NOTHING"
    connection.execute(
        text(
            f"INSERT INTO {preparer.format_table(table)} AS stored ({quoted_columns}) "  # noqa: S608
            f"SELECT {quoted_columns} FROM {preparer.quote(staging)} ORDER BY {conflict} "
            f"ON CONFLICT ({conflict}) {action}"
        )
    )


def _render_merge_sql(rule: Merge, stored: str, new: str) -> str:
    """The SQL text of a merge rule, for the statements built as text (COPY path, MERGE)."""
    if rule is Merge.REPLACE:
        return new
    if rule is Merge.KEEP:
        return f"COALESCE({stored}, {new})"
    comparison = ">" if rule is Merge.GREATEST else "<"
    return f"CASE WHEN {new} {comparison} {stored} THEN {new} ELSE {stored} END"


def mssql_merge_statement(
    table: Table,
    *,
    columns: Sequence[str],
    key: Sequence[str],
    rules: Mapping[str, Merge],
    dialect: Any,
) -> Any:
    """:func:`mssql_merge_sql` with every parameter bound as its column's type, so values go through
    the column's bind processing (JSON serialised, timestamps as ISO 8601 text) as in any other insert."""
    return text(mssql_merge_sql(table, columns=columns, key=key, rules=rules, dialect=dialect)).bindparams(
        *(bindparam(name, type_=table.c[name].type) for name in columns)
    )


def _mssql_source_type(column_type: Any, dialect: Any) -> str:
    """The type a MERGE source column is cast to: the column's own, text as NVARCHAR(max) (no silent
    truncation by a cast: the insert into the column still fails as it would), binary as VARBINARY(max)."""
    if isinstance(column_type, JSON | String):
        return "NVARCHAR(max)"
    if isinstance(column_type, LargeBinary):
        return "VARBINARY(max)"
    return str(column_type.compile(dialect=dialect))


def mssql_merge_sql(
    table: Table,
    *,
    columns: Sequence[str],
    key: Sequence[str],
    rules: Mapping[str, Merge],
    dialect: Any,
) -> str:
    """A SQL Server ``MERGE`` upserting one row given as bound parameters named after the columns.

    Identifiers are quoted by the dialect; values are only ever bound (``:name``), never formatted in.
    Each source column is cast to its column's type: a NULL sent for a DATETIME or JSON column is
    otherwise an untyped (int) NULL, and ``COALESCE(target.x, source.x)`` / ``CASE`` then convert the
    stored value to int (error 245 on text, 257 on datetime). A timestamp arrives as ISO 8601 ``T``
    text (:class:`planmon.store.schema.Timestamp`), which the cast reads the same under any DATEFORMAT.
    """
    quote = dialect.identifier_preparer.quote
    source = ", ".join(
        f"CAST(:{name} AS {_mssql_source_type(table.c[name].type, dialect)}) AS {quote(name)}"
        for name in columns
    )
    match = " AND ".join(f"target.{quote(name)} = source.{quote(name)}" for name in key)
    assignments = ", ".join(
        f"target.{quote(name)} = " + _render_merge_sql(rule, f"target.{quote(name)}", f"source.{quote(name)}")
        for name, rule in rules.items()
    )
    insert_columns = ", ".join(quote(name) for name in columns)
    insert_values = ", ".join(f"source.{quote(name)}" for name in columns)
    when_matched = f" WHEN MATCHED THEN UPDATE SET {assignments}" if assignments else ""
    # Identifiers are quoted by the dialect and values are bound: no injection path.
    return (
        f"MERGE INTO {dialect.identifier_preparer.format_table(table)} WITH (HOLDLOCK) AS target "  # noqa: S608
        f"USING (SELECT {source}) AS source ON {match}{when_matched} "
        f"WHEN NOT MATCHED THEN INSERT ({insert_columns}) VALUES ({insert_values});"
    )
