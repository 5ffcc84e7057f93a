"""Thresholds: every operator at, below and above its threshold; result types; bad values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from planmon.model.probes import ProbeDefinition
from planmon.probes.evaluate import breaches, evaluate_result, threshold_status


@pytest.mark.parametrize(
    ("operator", "below", "at", "above"),
    [
        (">", False, False, True),
        (">=", False, True, True),
        ("<", True, False, False),
        ("<=", True, True, False),
        ("=", False, True, False),
        ("!=", True, False, True),
    ],
)
def test_every_operator_at_its_boundary(operator: Any, below: bool, at: bool, above: bool) -> None:
    assert breaches(9.999, operator, 10.0) is below
    assert breaches(10.0, operator, 10.0) is at
    assert breaches(10.001, operator, 10.0) is above
    assert breaches(10.0, operator, None) is False


def probe(**fields: Any) -> ProbeDefinition:
    return ProbeDefinition.model_validate({"name": "p", "sql": "SELECT 1", **fields})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(99, "ok"), (100, "warning"), (999, "warning"), (1000, "critical"), (5000, "critical")],
)
def test_critical_before_warning(value: float, expected: str) -> None:
    assert threshold_status(value, probe(operator=">=", warning=100, critical=1000)) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(50, "ok"), (20, "warning"), (5, "critical"), (4, "critical")]
)
def test_lower_is_worse(value: float, expected: str) -> None:
    assert threshold_status(value, probe(operator="<=", warning=20, critical=5)) == expected


def test_nan_is_an_error() -> None:
    result = evaluate_result(probe(critical=1), ["v"], [(float("nan"),)], truncated=False)
    assert result.status == "error" and "finite" in (result.error or "")


@pytest.mark.parametrize("cell", [3, 3.0, Decimal("3"), "3", b"3", True])
def test_scalar_accepts_numbers_in_every_driver_form(cell: Any) -> None:
    result = evaluate_result(probe(operator=">=", critical=1), ["v"], [(cell,)], truncated=False)
    assert result.status == "critical" and result.value == float(cell if not isinstance(cell, bytes) else 3)


@pytest.mark.parametrize(
    ("rows", "message"),
    [([], "returned no row"), ([(None,)], "is NULL"), ([("lots",)], "is the text 'lots', not a number")],
)
def test_scalar_errors(rows: list[tuple[Any, ...]], message: str) -> None:
    result = evaluate_result(probe(critical=1), ["v"], rows, truncated=False)
    assert result.status == "error" and message in (result.error or "")


def test_rowcount_counts_rows_and_refuses_truncated() -> None:
    p = probe(result="rowcount", operator=">", warning=1, critical=2)
    assert evaluate_result(p, ["a"], [(1,), (2,)], truncated=False).status == "warning"
    assert evaluate_result(p, ["a"], [], truncated=False).value == 0
    truncated = evaluate_result(p, ["a"], [(1,)] * 5, truncated=True)
    assert truncated.status == "error" and "more than 5 rows" in (truncated.error or "")


def test_dataset_worst_row_decides_and_breaching_rows_are_listed() -> None:
    p = probe(result="dataset", operator=">", warning=10, critical=100)
    rows = [("orders", 5), ("items", 50), ("users", 500), ("carts", 20)]
    result = evaluate_result(p, ["table_name", "dead_rows"], rows, truncated=False)
    assert (result.status, result.value) == ("critical", 500)
    assert result.breaching_rows == (
        "[warning] table_name=items: 50",
        "[critical] table_name=users: 500",
        "[warning] table_name=carts: 20",
    )
    assert evaluate_result(p, ["t", "v"], [], truncated=False).status == "ok"


def test_dataset_value_column() -> None:
    p = probe(result="dataset", value_column="Lag", operator=">", critical=10)
    result = evaluate_result(p, ["lag", "replica"], [(11, "r1"), (3, "r2")], truncated=False)
    assert (result.status, result.value, result.breaching_rows) == (
        "critical",
        11,
        ("[critical] replica=r1: 11",),
    )
    missing = evaluate_result(
        probe(result="dataset", value_column="x", critical=1), ["a"], [(1,)], truncated=False
    )
    assert missing.status == "error" and "value_column 'x'" in (missing.error or "")
