"""Bulk load of pandas frames into a repository table with PostgreSQL's binary COPY, typed from the
table's SQLAlchemy definition.

Benchmarks load millions of runtime-stats rows: psycopg's ``write_row`` costs microseconds a row in
Python, while NumPy encodes whole columns into the binary COPY format in nanoseconds a value. Which
columns are loaded and how each is encoded come from the ``Table`` (``planmon.store.schema``),
compiled for PostgreSQL, never from a list written here: a column added, dropped or retyped there
is followed here. A server-generated surrogate key (``Table.autoincrement_column``) is left to the
server; a column the caller gives no values for gets its scalar default, or NULL when nullable,
and anything else is an error naming the column.

Binary COPY rows are fixed width here: rows are encoded in runs of one NULL pattern (a value is
NULL where it is None/NaN/NaT), in the frame's order, and a text column must hold one string per
load; a varying text column is refused with a message, not loaded wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Column, Table
from sqlalchemy.dialects import postgresql

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]

# PostgreSQL type (as SQLAlchemy compiles it) -> big-endian NumPy dtype of its binary form
FIXED_TYPES = {
    "BIGINT": ">i8",
    "INTEGER": ">i4",
    "SMALLINT": ">i2",
    "FLOAT": ">f8",
    "DOUBLE PRECISION": ">f8",
    "REAL": ">f4",
    "BOOLEAN": "u1",
    "TIMESTAMP WITHOUT TIME ZONE": ">i8",  # microseconds since 2000-01-01
}
TEXT_TYPE = re.compile(r"^(VARCHAR(\(\d+\))?|TEXT)$")


def loaded_columns(table: Table) -> list[Column[Any]]:
    """The columns a load writes: all of the table's but a server-generated surrogate key."""
    generated = table.autoincrement_column
    return [column for column in table.columns if column is not generated]


def complete(table: Table, values: Mapping[str, Any], rows: int) -> pd.DataFrame:
    """A frame with exactly the loaded columns: given values, else the column's scalar default,
    else NULL; a NOT NULL column with neither raises ValueError naming it."""
    columns: dict[str, Any] = {}
    for column in loaded_columns(table):
        if column.name in values:
            columns[column.name] = values[column.name]
        elif column.default is not None and getattr(column.default, "is_scalar", False):
            columns[column.name] = np.full(rows, getattr(column.default, "arg", None))
        elif column.nullable:
            columns[column.name] = np.full(rows, np.nan)
        else:
            raise ValueError(
                f"{table.name}.{column.name} is NOT NULL without a scalar default and the loader was given "
                "no values for it: generate them (bench/analyze_fleet.py, _stats_values)"
            )
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


def copy_frame(connection: psycopg.Connection[Any], table: Table, frame: pd.DataFrame) -> int:
    """COPY ``frame`` (the loaded columns, see :func:`complete`) into ``table``; rows written."""
    columns = loaded_columns(table)
    names = ", ".join(f'"{column.name}"' for column in columns)
    encoded = [_encode(column, frame[column.name]) for column in columns]
    nulls = np.stack([null for _data, null in encoded], axis=1) if encoded else np.zeros((len(frame), 0))
    patterns, group = np.unique(nulls, axis=0, return_inverse=True)
    group = group.ravel()
    # runs of consecutive rows sharing a NULL pattern, so the rows go in the frame's order (the
    # order a caller chose, e.g. the repository's key order, is the order indexes are built in)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.array([], int)
    ends = np.r_[starts[1:], len(group)]
    statement = f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(SIGNATURE)
        for start, end in zip(starts, ends, strict=True):
            copy.write(_rows(encoded, patterns[group[start]], np.arange(start, end)))
        copy.write(TRAILER)
    return len(frame)


def _encode(column: Column[Any], series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values in their binary COPY form, NULL mask) of one column."""
    type_name = column.type.compile(dialect=_DIALECT)
    if type_name.startswith("TIMESTAMP WITHOUT TIME ZONE"):
        moments = pd.to_datetime(series).to_numpy(dtype="datetime64[us]")
        null = np.isnat(moments)
        ticks = (moments - PG_EPOCH).astype(np.int64)
        return np.where(null, 0, ticks).astype(">i8"), null
    if type_name in FIXED_TYPES:
        null = series.isna().to_numpy()
        values = series.to_numpy()
        if null.any():
            values = np.where(null, 0, values)
        return values.astype(FIXED_TYPES[type_name]), null
    if TEXT_TYPE.match(type_name):
        null = series.isna().to_numpy()
        texts = series[~null].astype(str).unique()
        if len(texts) > 1:
            raise ValueError(
                f"{column.table.name}.{column.name}: the binary loader takes one text value per load "
                f"(got {len(texts)}); load varying text through the repository instead"
            )
        encoded = texts[0].encode() if len(texts) else b""
        if not encoded:  # an empty string is a value of no bytes (NumPy has no S0 dtype)
            return np.zeros(len(series), dtype="V0"), null
        return np.full(len(series), encoded, dtype=f"S{len(encoded)}"), null
    raise ValueError(f"{column.table.name}.{column.name}: no binary COPY encoding for type {type_name}")


def _rows(encoded: list[tuple[np.ndarray, np.ndarray]], pattern: np.ndarray, selected: np.ndarray) -> bytes:
    """The binary COPY rows of the ``selected`` rows, which share one NULL ``pattern``."""
    fields: list[tuple[str, Any]] = [("count", ">i2")]
    for position, ((data, _null), is_null) in enumerate(zip(encoded, pattern, strict=True)):
        fields.append((f"length{position}", ">i4"))
        if not is_null:
            fields.append((f"value{position}", data.dtype))
    rows = np.empty(len(selected), dtype=np.dtype(fields))
    rows["count"] = len(encoded)
    for position, ((data, _null), is_null) in enumerate(zip(encoded, pattern, strict=True)):
        rows[f"length{position}"] = -1 if is_null else data.dtype.itemsize
        if not is_null:
            rows[f"value{position}"] = data[selected]
    return rows.tobytes()
