"""RegressionStore: one open regression per (target, query, kind), recorded in a fixed number of
statements whatever the batch size (SQLite and live PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from planmon.model import QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.regressions import RegressionStore
from planmon.store.schema import audit_log

END = datetime(2026, 11, 20, 12)


def _queries(repository: Repository, count: int) -> tuple[int, list[int]]:
    target_id = repository.add_target(TargetSpec(name="shop", engine="postgres", conn_id="c")).id
    ids = CollectionStore(repository).upsert_queries(target_id, [QueryRecord(f"q{n}") for n in range(count)])
    return target_id, [ids[("", f"q{n}")] for n in range(count)]


def _detection(target_id: int, query_id: int, kind: str = "plan_change", **values: Any) -> dict[str, Any]:
    return {"target_id": target_id, "query_id": query_id, "kind": kind, "severity": "low",
            "metric": "cpu_us", "ratio": 4.0, "impact": 20.0, "evidence": {"n": 1}, **values}  # fmt: skip


@contextmanager
def _statements(repository: Repository) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(repository.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(repository.engine, "before_cursor_execute", count)


def _audit_actions(repository: Repository) -> list[str]:
    with repository.engine.connect() as connection:
        return list(connection.execute(select(audit_log.c.action).order_by(audit_log.c.id)).scalars())


def test_ids_come_back_in_detection_order_and_a_repeated_key_is_one_regression(
    repository: Repository,
) -> None:
    target_id, queries = _queries(repository, 3)
    store = RegressionStore(repository)
    detections = [
        _detection(target_id, queries[2]),
        _detection(target_id, queries[0]),
        _detection(target_id, queries[0], kind="same_plan"),
        _detection(target_id, queries[2], ratio=5.0),  # the same key again: the last one wins
    ]
    ids = store.record_regressions(detections, detected_at=END)
    assert ids[0] == ids[3] and len(set(ids)) == 3
    stored = store.regressions().set_index("id")
    assert stored.loc[ids[0], "ratio"] == 5.0
    assert stored.loc[ids[1], "query_id"] == queries[0] and stored.loc[ids[2], "kind"] == "same_plan"
    assert set(stored["status"]) == {"open"}
    assert _audit_actions(repository).count("regression.open") == 3


def test_recording_the_same_window_again_changes_nothing(repository: Repository) -> None:
    target_id, queries = _queries(repository, 4)
    store = RegressionStore(repository)
    detections = [_detection(target_id, q, ratio=2.0 + n) for n, q in enumerate(queries)]
    first = store.record_regressions(detections, detected_at=END)
    before, audits = store.regressions(), _audit_actions(repository)
    assert store.record_regressions(detections, detected_at=END) == first
    assert store.regressions().equals(before)
    assert _audit_actions(repository) == audits


def test_an_older_window_moves_first_detected_back_and_keeps_the_newer_values(repository: Repository) -> None:
    target_id, [query_id] = _queries(repository, 1)
    store = RegressionStore(repository)
    [regression_id] = store.record_regressions([_detection(target_id, query_id, ratio=6.0)], detected_at=END)
    older = END - timedelta(hours=5)
    assert store.record_regressions([_detection(target_id, query_id, ratio=2.0)], detected_at=older) == [
        regression_id
    ]
    row = store.regressions().iloc[0]
    assert row["ratio"] == 6.0
    assert row["first_detected"].to_pydatetime() == older and row["last_detected"].to_pydatetime() == END
    newer = END + timedelta(hours=1)
    store.record_regressions([_detection(target_id, query_id, ratio=3.0)], detected_at=newer)
    row = store.regressions().iloc[0]
    assert row["ratio"] == 3.0 and row["last_detected"].to_pydatetime() == newer


def test_the_statement_count_does_not_grow_with_the_batch(repository: Repository) -> None:
    target_id, queries = _queries(repository, 300)
    store = RegressionStore(repository)
    kinds = {10: "plan_change", 300: "same_plan"}
    existing = [_detection(target_id, q, kind=kind) for q in queries[:5] for kind in kinds.values()]
    store.record_regressions(existing, detected_at=END - timedelta(hours=1))
    counts = []
    for size, kind in kinds.items():  # 5 of each batch are open already, the rest are new
        with _statements(repository) as seen:
            store.record_regressions(
                [_detection(target_id, q, kind=kind) for q in queries[:size]], detected_at=END
            )
        counts.append(len(seen))
    assert counts[0] == counts[1], counts
    assert len(store.regressions()) == 10 + 300


def test_resolving_closes_once_and_frees_the_key(repository: Repository) -> None:
    target_id, [query_id] = _queries(repository, 1)
    store = RegressionStore(repository)
    [regression_id] = store.record_regressions([_detection(target_id, query_id)], detected_at=END)
    assert store.resolve_regressions([regression_id], resolved_at=END, reason="back") == 1
    assert store.resolve_regressions([regression_id], resolved_at=END, reason="back") == 0
    [again] = store.record_regressions(
        [_detection(target_id, query_id)], detected_at=END + timedelta(hours=2)
    )
    assert again != regression_id
    assert store.regressions().set_index("id")["status"].to_dict() == {
        regression_id: "resolved",
        again: "open",
    }
    assert _audit_actions(repository).count("regression.resolve") == 1
