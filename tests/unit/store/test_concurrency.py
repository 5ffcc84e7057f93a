"""Two processes upserting the same keys at once: no duplicates, no deadlock, no lost or torn update."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from sqlalchemy import select

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.schema import runtime_stats
from tests.harness.store_workers import upsert_repeatedly

pytestmark = pytest.mark.slow
ROUNDS = 3


def test_concurrent_upserts_of_the_same_keys(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="t", engine="postgres", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_id = collection.upsert_plans(target_id, [PlanRecord("p", "q")])["p"]
    url = repository.engine.url.render_as_string(hide_password=False)
    ids = (target_id, plan_id, query_id)

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(upsert_repeatedly, url, writer, ids, ROUNDS, writer == 2)  # opposite key orders
            for writer in (1, 2)
        ]
        assert sorted(f.result(timeout=240) for f in futures) == [1, 2]

    with repository.engine.connect() as connection:
        rows = connection.execute(
            select(runtime_stats.c.interval_start, runtime_stats.c.executions, runtime_stats.c.cpu_us_mean)
        ).all()
    assert len(rows) == 3000 + 2 * 500, "duplicates or lost rows"
    start = min(r.interval_start for r in rows)
    keys_by_writer: dict[int, set[int]] = {1: set(), 2: set()}
    for row in rows:
        key = int((row.interval_start - start).total_seconds() // 60)
        writer, written_key = divmod(int(row.cpu_us_mean), 1_000_000)
        assert row.executions == writer, "a row mixes two writers' values (torn update)"
        assert written_key == key, "a row holds another key's values"
        keys_by_writer[writer].add(key)
    assert set(range(4000, 4500)) <= keys_by_writer[1], "writer 1's own rows were lost"
    assert set(range(5000, 5500)) <= keys_by_writer[2], "writer 2's own rows were lost"
