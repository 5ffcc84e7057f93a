"""Worker processes for the repository's concurrency tests (importable, so spawn can run them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.connection import create_repository_engine

T0 = datetime(2026, 11, 20)


def stats_rows(writer: int, keys: range, plan_id: int, target_id: int, query_id: int) -> list[dict[str, Any]]:
    """Rows whose values say who wrote them: executions = writer, cpu = writer * 1e6 + key."""
    return [
        {
            "target_id": target_id,
            "plan_id": plan_id,
            "query_id": query_id,
            "interval_start": T0 + timedelta(minutes=k),
            "interval_end": T0 + timedelta(minutes=k + 1),
            "execution_type": 0,
            "executions": writer,
            "cpu_us_mean": float(writer * 1_000_000 + k),
        }
        for k in keys
    ]


def upsert_repeatedly(url: str, writer: int, ids: tuple[int, int, int], rounds: int, reverse: bool) -> int:
    target_id, plan_id, query_id = ids
    shared = range(0, 3000)  # both writers
    own = range(3000 + writer * 1000, 3000 + writer * 1000 + 500)  # this writer only
    rows = stats_rows(writer, shared, plan_id, target_id, query_id) + stats_rows(
        writer, own, plan_id, target_id, query_id
    )
    if reverse:
        rows.reverse()
    repository = Repository(create_repository_engine(make_url(url)))
    try:
        for _ in range(rounds):
            CollectionStore(repository).upsert_runtime_stats(rows)
    finally:
        repository.close()
    return writer
