"""Thresholds: a probe's value against its warning and critical thresholds.

A value *breaches* a threshold when ``value <operator> threshold`` holds (``operator: ">"`` with
``critical: 100`` means "critical when the value is above 100"). Critical is checked first.
``=`` and ``!=`` compare exactly: they are meant for counts, flags and states, not for measurements.
"""

from __future__ import annotations

import math
import operator as op
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from planmon.model.probes import Operator, ProbeDefinition

OK = "ok"
WARNING = "warning"
CRITICAL = "critical"
ERROR = "error"
TIMEOUT = "timeout"
REFUSED = "refused"
STATUSES = (OK, WARNING, CRITICAL, ERROR, TIMEOUT, REFUSED)
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

_OPERATORS: dict[Operator, Callable[[float, float], bool]] = {
    ">": op.gt,
    ">=": op.ge,
    "<": op.lt,
    "<=": op.le,
    "=": op.eq,
    "!=": op.ne,
}


def breaches(value: float, operator: Operator, threshold: float | None) -> bool:
    """True when ``value <operator> threshold``; no threshold never breaches."""
    if threshold is None:
        return False
    return _OPERATORS[operator](value, threshold)


def threshold_status(value: float, probe: ProbeDefinition) -> str:
    """ok / warning / critical for a finite ``value``; ValueError for NaN or infinity."""
    if not math.isfinite(value):
        raise ValueError(f"the probe returned {value}, not a finite number")
    if breaches(value, probe.operator, probe.critical):
        return CRITICAL
    if breaches(value, probe.operator, probe.warning):
        return WARNING
    return OK


def worse(first: str, second: str) -> bool:
    """True when threshold status ``first`` is worse than ``second`` (ok < warning < critical)."""
    return _RANK.get(first, 0) > _RANK.get(second, 0)


MAX_BREACHING_ROWS = 20  # dataset rows listed in an alert


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a probe's result amounts to: status, the value stored, and (datasets) the rows in breach."""

    status: str
    value: float | None = None
    error: str | None = None
    breaching_rows: tuple[str, ...] = ()


def as_number(value: Any) -> float:
    """A result cell as a number (ints, decimals, floats, booleans, numeric text); ValueError otherwise."""
    if value is None:
        raise ValueError("is NULL")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"is the text {value[:40]!r}, not a number") from None
    raise ValueError(f"is a {type(value).__name__}, not a number")


def evaluate_result(
    probe: ProbeDefinition, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, truncated: bool
) -> Evaluation:
    """The :class:`Evaluation` of a probe's result set according to its ``result`` type.

    - ``scalar``: the first column of the first row (no row, NULL or text is an error);
    - ``rowcount``: how many rows came back (more than the row limit is an error: use ``count(*)``);
    - ``dataset``: each row's ``value_column`` (default the last column) against the thresholds; the
      worst row decides the status and its value is stored; rows in breach are listed by their
      other columns.
    """
    try:
        if probe.result == "scalar":
            if not rows:
                return Evaluation(ERROR, error="the scalar probe returned no row")
            value = _number_or_error(rows[0][0], "the first column of the first row")
            return Evaluation(threshold_status(value, probe), value)
        if truncated:
            return Evaluation(
                ERROR,
                error=f"the probe returned more than {len(rows)} rows (PLANMON_PROBE_MAX_ROWS); "
                "count in SQL (SELECT count(*) ...) or aggregate",
            )
        if probe.result == "rowcount":
            value = float(len(rows))
            return Evaluation(threshold_status(value, probe), value)
        return _evaluate_dataset(probe, columns, rows)
    except ValueError as exc:
        return Evaluation(ERROR, error=str(exc))


def _number_or_error(cell: Any, what: str) -> float:
    try:
        return as_number(cell)
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None


def _evaluate_dataset(
    probe: ProbeDefinition, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Evaluation:
    if not rows:
        return Evaluation(OK)
    index = len(columns) - 1
    if probe.value_column is not None:
        lowered = [c.lower() for c in columns]
        if probe.value_column.lower() not in lowered:
            raise ValueError(f"value_column {probe.value_column!r} is not among the columns {list(columns)}")
        index = lowered.index(probe.value_column.lower())
    status, value, breaching = OK, None, []
    for number, row in enumerate(rows, start=1):
        row_value = _number_or_error(row[index], f"row {number}, column {columns[index]!r},")
        row_status = threshold_status(row_value, probe)
        if row_status != OK:
            labels = ", ".join(f"{c}={row[i]}" for i, c in enumerate(columns) if i != index)
            breaching.append(f"[{row_status}] {labels or f'row {number}'}: {row_value:g}")
        if value is None or worse(row_status, status):
            status, value = row_status, row_value
    return Evaluation(status, value, breaching_rows=tuple(breaching[:MAX_BREACHING_ROWS]))
