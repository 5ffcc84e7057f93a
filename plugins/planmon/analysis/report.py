"""Regressions as the JSON objects ``planmon analyze --json`` and ``planmon regressions --json`` print
(the shape documented in docs/detection.md), and as one readable line each."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

JSON_KEYS = (
    "id", "target", "query_id", "query_text", "kind", "metric", "baseline_plan", "current_plan",
    "baseline_mean", "current_mean", "ratio", "impact", "p_value", "severity", "status",
    "first_detected", "last_detected", "diff",
)  # fmt: skip


def regressions_json(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``RegressionStore.regressions()`` in the documented JSON shape."""
    return [_row_json(row) for row in frame.to_dict("records")]


def _row_json(row: dict[Any, Any]) -> dict[str, Any]:
    diff = row.get("diff")
    return {
        "id": int(row["id"]),
        "target": row["target"],
        "query_id": str(row["query_key"]),
        "query_text": row.get("query_text"),
        "kind": row["kind"],
        "metric": row["metric"],
        "baseline_plan": _text(row.get("baseline_plan_key")),
        "current_plan": _text(row.get("current_plan_key")),
        "baseline_mean": _number(row.get("baseline_mean")),
        "current_mean": _number(row.get("current_mean")),
        "ratio": _number(row.get("ratio")),
        "impact": _number(row.get("impact")),
        "p_value": _number(row.get("p_value")),
        "severity": row["severity"],
        "status": row["status"],
        "first_detected": _when(row.get("first_detected")),
        "last_detected": _when(row.get("last_detected")),
        "diff": diff.get("text") if isinstance(diff, dict) else diff,
        # the rule that fired, per-plan numbers, and for plan_unknown its reason and hint
        "evidence": row.get("evidence") if isinstance(row.get("evidence"), dict) else None,
    }


def line(regression: dict[str, Any]) -> str:
    """``#12 high plan_change orders-prod query 42: cpu_us x4.0, +18.0 s/h, p=1e-12 (open)``."""
    ratio = f"x{regression['ratio']:.1f}" if regression.get("ratio") is not None else "-"
    impact = f"+{regression['impact']:.1f}/h" if regression.get("impact") is not None else "-"
    p_value = f"p={regression['p_value']:.2g}" if regression.get("p_value") is not None else ""
    head = f"#{regression['id']} {regression['severity']} {regression['kind']} {regression['target']}"
    return f"{head} query {regression['query_id']}: {regression['metric']} {ratio}, {impact} {p_value} " + (
        f"({regression['status']})"
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None  # JSON has no NaN or Infinity


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _when(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    return pd.Timestamp(value).isoformat()
