"""The regression page of a SQL Server parameter-sensitive variant lists the variants of its parent."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import insert

from planmon.model import QueryRecord
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.schema import regression
from tests.harness.ui_seed import SeededFleet
from tests.unit.ui.conftest import AUTH


def _regression_on(repository: Repository, target_id: int, query_id: int) -> int:
    moment = datetime(2026, 11, 17, 6)
    with repository.engine.begin() as connection:
        return int(
            connection.execute(
                insert(regression)
                .values(
                    target_id=target_id, query_id=query_id, kind="plan_change", status="open",
                    open_key="open", severity="high", metric="cpu_us", baseline_mean=1000.0,
                    current_mean=21000.0, evidence={}, first_detected=moment, last_detected=moment,
                )
                .returning(regression.c.id)
            ).scalar_one()
        )  # fmt: skip


def test_a_variants_page_lists_its_siblings_and_their_open_regressions(
    client: TestClient, repository: Repository, fleet: SeededFleet
) -> None:
    ids = CollectionStore(repository).upsert_queries(
        fleet.target_id,
        [
            QueryRecord(key, "Sales", parent_query_key="20", dispatcher_plan_key="30")
            for key in ("21", "22", "23")
        ],
    )
    regressed = _regression_on(repository, fleet.target_id, ids[("Sales", "22")])
    body = client.get(f"/api/regressions/{regressed}", headers=AUTH).json()
    assert [(v["query_key"], v["this_query"], v["regression_id"]) for v in body["variants"]] == [
        ("21", False, None),
        ("22", True, regressed),
        ("23", False, None),
    ]
    page = client.get(f"/regressions/{regressed}", headers=AUTH).text
    assert "Query variants" in page and "parent query 20" in page and "dispatcher plan 30" in page
    assert f'href="/regressions/{regressed}"' in page and page.count("<strong>this query</strong>") == 1


def test_a_query_that_is_no_variant_has_no_variants_section(client: TestClient, fleet: SeededFleet) -> None:
    assert client.get(f"/api/regressions/{fleet.regression_id}", headers=AUTH).json()["variants"] == []
    assert "Query variants" not in client.get(f"/regressions/{fleet.regression_id}", headers=AUTH).text
