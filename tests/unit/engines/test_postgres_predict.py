"""The hypopg prediction judged from recorded EXPLAIN output (PostgreSQL 15.20, hypopg 1.3.1, a
200,000-row orders table: ``scripts/record_hypopg_explain.py``): the planner's choice with the
hypothetical index, its cost beside the regressed plan's, and a planner that would not use the
index as a contradiction. The live path (detection, create, EXPLAIN, reset, rollback) is exercised
by tests/integration/test_approval_desk_live_postgres.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planmon.engines.postgres.predict import judge_hypothetical, plain_definition, root_plan

RECORDED = Path(__file__).parent / "hypopg_recorded"


def _recorded(name: str) -> Any:
    return json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))


def test_hypopg_takes_the_definition_without_concurrently() -> None:
    sql = "CREATE UNIQUE INDEX CONCURRENTLY orders_customer ON public.orders USING btree (customer);"
    assert (
        plain_definition(sql) == "CREATE UNIQUE INDEX orders_customer ON public.orders USING btree (customer)"
    )


def test_the_planner_would_use_the_hypothetical_index_and_costs_drop() -> None:
    used = _recorded("uses_index")
    prediction = judge_hypothetical(
        used["plan"], used["oid"], _recorded("regressed"), index_name="orders_customer"
    )
    assert prediction.available and prediction.method == "hypopg" and not prediction.contradicts
    first, second = prediction.lines
    assert first.startswith("hypopg: with orders_customer as a hypothetical index the planner would choose: ")
    assert f"Bitmap Index Scan using <{used['oid']}>btree_orders_customer" in first
    assert prediction.details["cost"] < 100 and prediction.details["regressed_cost"] > 4000
    assert second.startswith("regressed plan: Aggregate > Seq Scan on orders (estimated total cost 4562.04)")
    assert "predicted x108.1 cheaper" in second


def test_a_planner_that_ignores_the_index_contradicts_the_proposal() -> None:
    ignored = _recorded("ignores_index")
    prediction = judge_hypothetical(
        ignored["plan"], ignored["oid"], _recorded("regressed"), index_name="orders_note"
    )
    assert prediction.contradicts and prediction.details["uses_index"] is False
    assert prediction.lines[-1] == (
        "WARNING: the planner would not use orders_note: the prediction contradicts the proposal"
    )


def test_another_hypothetical_index_is_not_ours() -> None:
    used = _recorded("uses_index")
    prediction = judge_hypothetical(used["plan"], used["oid"] + 1, None, index_name="orders_customer")
    assert prediction.contradicts and len(prediction.lines) == 2  # no regressed plan stored: no cost beside


def test_no_plan_in_the_explain_output_is_no_prediction() -> None:
    prediction = judge_hypothetical([], 1, None, index_name="x")
    assert not prediction.available and prediction.lines == (
        "no prediction: the hypothetical EXPLAIN returned no plan",
    )
    assert root_plan(b"not json") is None and root_plan({"Plan": {"Node Type": "Result"}}) == {
        "Node Type": "Result"
    }
