"""runtime_stats keyed on its natural key, day partitions on PostgreSQL made by the write path, and
one purge for every time-keyed table (ADR 0005). SQLite and the harness's live PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from planmon.errors import PlanmonError
from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore, CollectionWrite
from planmon.store.partitions import (
    _bounds,
    days_between,
    partition_name,
    partitions,
    purge_before,
)
from planmon.store.retention import RetentionStore
from planmon.store.schema import runtime_stats, runtime_stats_rollup

T0 = datetime(2026, 12, 1)  # midnight UTC: day n of the tests is T0 + n days
HOUR = timedelta(hours=1)


def _ids(repository: Repository, name: str = "t", plans: int = 2) -> tuple[int, int, list[int]]:
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name=name, engine="sqlserver", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_ids = collection.upsert_plans(target_id, [PlanRecord(f"p{n}", "q") for n in range(plans)])
    return target_id, query_id, sorted(plan_ids.values())


def _rows(
    target_id: int, query_id: int, plan_ids: list[int], start: datetime, hours: int
) -> list[dict[str, Any]]:
    return [
        {
            "target_id": target_id,
            "plan_id": plan_id,
            "query_id": query_id,
            "interval_start": start + h * HOUR,
            "interval_end": start + (h + 1) * HOUR,
            "executions": 5,
            "cpu_us_mean": 100.0 + h,
        }
        for h in range(hours)
        for plan_id in plan_ids
    ]


def _partition_days(repository: Repository) -> list[date]:
    with repository.engine.connect() as connection:
        found = partitions(connection, runtime_stats)
    assert found is not None, "runtime_stats is not partitioned"
    assert all(p.lower is not None and p.upper is not None for p in found), "a DEFAULT partition"
    return [p.lower.date() for p in found if p.lower is not None]


def _count(repository: Repository, table: Any = runtime_stats) -> int:
    with repository.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


# -- pure helpers ----------------------------------------------------------------------------------


def test_days_names_and_bounds() -> None:
    assert days_between(T0 + 23 * HOUR, T0 + 25 * HOUR) == [date(2026, 12, 1), date(2026, 12, 2)]
    assert days_between(T0, T0 + timedelta(days=1)) == [date(2026, 12, 1)]  # half-open
    assert days_between(T0, T0) == []
    assert partition_name("runtime_stats", date(2026, 12, 3)) == "runtime_stats_p20261203"
    bound = "FOR VALUES FROM ('2026-12-03 00:00:00') TO ('2026-12-04 00:00:00')"
    assert _bounds(bound) == (datetime(2026, 12, 3), datetime(2026, 12, 4))
    assert _bounds("DEFAULT") == (None, None)
    assert _bounds("FOR VALUES FROM (MINVALUE) TO ('2026-12-04 00:00:00')") == (None, datetime(2026, 12, 4))


def test_runtime_stats_has_no_surrogate_id() -> None:
    assert "id" not in runtime_stats.c
    key = [c.name for c in runtime_stats.primary_key.columns]
    assert key == ["plan_id", "interval_start", "execution_type"]
    assert {tuple(c.name for c in index.columns) for index in runtime_stats.indexes} == {
        ("target_id", "interval_start"),
        ("interval_start",),
    }


# -- partitions are made by the write path ---------------------------------------------------------


def test_writes_over_several_days_create_their_partitions_and_a_retry_changes_nothing(
    repository: Repository,
) -> None:
    collection = CollectionStore(repository)
    target_id, query_id, plan_ids = _ids(repository)
    rows = _rows(target_id, query_id, plan_ids, T0 + 20 * HOUR, hours=30)  # days 0, 1 and 2
    assert collection.upsert_runtime_stats(rows) == 60
    first = collection.runtime_stats(T0, T0 + timedelta(days=3))
    collection.upsert_runtime_stats(rows)  # a retried task
    again = collection.runtime_stats(T0, T0 + timedelta(days=3))
    assert len(first) == 60 and first.equals(again)
    assert _count(repository) == 60
    if repository.engine.dialect.name == "postgresql":
        assert _partition_days(repository) == [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]


def test_a_collection_write_creates_the_partitions_of_its_rows(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="t", engine="sqlserver", conn_id="c")).id
    start = T0 + timedelta(days=4, hours=23, minutes=45)  # an interval across midnight
    row = {
        "plan_key": "p",
        "database_name": "",
        "query_key": "q",
        "interval_start": start,
        "interval_end": start + timedelta(minutes=15),
        "executions": 3,
    }
    later = {
        **row,
        "interval_start": start + timedelta(minutes=15),
        "interval_end": start + timedelta(minutes=30),
    }
    write = CollectionWrite(
        target_id=target_id,
        interval_start=start,
        interval_end=start + timedelta(minutes=30),
        status="ok",
        queries=[QueryRecord("q")],
        plans=[PlanRecord("p", "q")],
        runtime_stats=[row, later],
    )
    collection.record_collection(write)
    collection.record_collection(write)
    assert _count(repository) == 2
    if repository.engine.dialect.name == "postgresql":
        assert _partition_days(repository) == [date(2026, 12, 5), date(2026, 12, 6)]


def test_ensuring_partitions_is_idempotent(repository: Repository) -> None:
    collection = CollectionStore(repository)
    made = collection.ensure_runtime_stats_partitions(T0, T0 + timedelta(days=2))
    again = collection.ensure_runtime_stats_partitions(T0 + HOUR, T0 + timedelta(days=2))
    if repository.engine.dialect.name != "postgresql":
        assert made == again == []  # nothing is partitioned there
        return
    assert made == ["runtime_stats_p20261201", "runtime_stats_p20261202"]
    assert again == []
    assert _partition_days(repository) == [date(2026, 12, 1), date(2026, 12, 2)]


@pytest.mark.postgres
def test_concurrent_writers_of_a_new_day_make_its_partition_once(postgres: Any, tmp_path: Any) -> None:
    from planmon.store.connection import create_repository_engine
    from tests.unit.store.conftest import fresh_postgres_url

    url = fresh_postgres_url(postgres)
    setup = Repository(create_repository_engine(url))
    setup.init_schema()
    target_id, query_id, plan_ids = _ids(setup, plans=8)
    workers = 6
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        repository = Repository(create_repository_engine(url))
        try:
            barrier.wait()
            rows = _rows(target_id, query_id, plan_ids[number : number + 1], T0 + 22 * HOUR, hours=4)
            CollectionStore(repository).upsert_runtime_stats(rows)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            repository.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assert _partition_days(setup) == [date(2026, 12, 1), date(2026, 12, 2)]
        assert _count(setup) == workers * 4
    finally:
        setup.close()


@pytest.mark.postgres
def test_a_table_in_the_way_of_a_partition_is_an_error_that_names_it(postgres: Any) -> None:
    from planmon.store.connection import create_repository_engine
    from tests.unit.store.conftest import fresh_postgres_url

    repository = Repository(create_repository_engine(fresh_postgres_url(postgres)))
    try:
        repository.init_schema()
        with repository.engine.begin() as connection:  # e.g. a partition a DBA detached to archive
            connection.execute(text("CREATE TABLE runtime_stats_p20261201 (x int)"))
        with pytest.raises(PlanmonError, match=r"runtime_stats_p20261201.*not a partition") as caught:
            CollectionStore(repository).ensure_runtime_stats_partitions(T0, T0 + HOUR)
        assert "rename it" in (caught.value.hint or "")
    finally:
        repository.close()


# -- purge -----------------------------------------------------------------------------------------


def test_purge_drops_whole_days_and_deletes_the_rest_of_the_straddling_one(repository: Repository) -> None:
    collection, retention = CollectionStore(repository), RetentionStore(repository)
    target_id, query_id, plan_ids = _ids(repository)
    collection.upsert_runtime_stats(_rows(target_id, query_id, plan_ids, T0, hours=4 * 24))  # days 0-3
    now = T0 + timedelta(days=32, hours=5)  # retention 30 days: cutoff day 2, 05:00
    with _statements(repository.engine) as statements:
        deleted = retention.purge(now=now, batch_rows=4)
    assert deleted["runtime_stats"] == 2 * (2 * 24 + 5)
    left = collection.runtime_stats(T0, T0 + timedelta(days=5))
    assert len(left) == 2 * (2 * 24 - 5)
    assert left["interval_start"].min() == T0 + timedelta(days=2, hours=5)
    stats_statements = [s for s in statements if "runtime_stats " in s or "runtime_stats_p" in s]
    if repository.engine.dialect.name == "postgresql":
        assert _partition_days(repository) == [date(2026, 12, 3), date(2026, 12, 4)]
        assert sum(s.startswith("DROP TABLE") for s in stats_statements) == 2
        # the straddling day only, by time slices of whole hours sized from the server's counts:
        # 5 hours of 2 rows in slices of about 4 rows (2 + 2 + 1 hours)
        deletes = [s for s in stats_statements if s.startswith("DELETE")]
        assert len(deletes) == 3
        day = "public.runtime_stats_p20261203"
        slice_of_the_day = f"DELETE FROM {day} WHERE {day}.interval_start >="
        assert all(s.startswith(slice_of_the_day) for s in deletes), deletes
    else:
        assert sum(s.startswith("DELETE FROM runtime_stats ") for s in stats_statements) == 27  # 106 / 4
    # nothing is shipped to the client: every statement on runtime_stats' rows is a DELETE
    assert not [s for s in stats_statements if s.startswith("SELECT") and "FROM runtime_stats " in s]
    assert retention.purge(now=now, batch_rows=4)["runtime_stats"] == 0  # a re-run deletes nothing


def test_purge_on_sqlite_deletes_by_rowid_range_in_bounded_batches(tmp_path: Any) -> None:
    from sqlalchemy.engine import URL

    from planmon.store.connection import create_repository_engine

    repository = Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db"))))
    try:
        repository.init_schema()
        target_id, query_id, plan_ids = _ids(repository, plans=3)
        CollectionStore(repository).upsert_runtime_stats(_rows(target_id, query_id, plan_ids, T0, hours=10))
        with _statements(repository.engine) as statements:
            gone = purge_before(repository.engine, runtime_stats, "interval_start", T0 + 7 * HOUR, 5)
        assert gone == 21 and _count(repository) == 9
        deletes = [s for s in statements if s.startswith("DELETE")]
        assert len(deletes) == 5  # 5 + 5 + 5 + 5 + 1
        assert all("rowid IN (SELECT rowid FROM runtime_stats WHERE" in s and "LIMIT" in s for s in deletes)
        with repository.engine.connect() as connection:
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT rowid FROM runtime_stats WHERE interval_start < ? LIMIT 5",
                ((T0 + 7 * HOUR).isoformat(sep=" "),),
            ).all()
        assert "ix_runtime_stats_interval_start (interval_start<?)" in " ".join(str(row[-1]) for row in plan)
    finally:
        repository.close()


def test_purge_of_rollups_keeps_a_bucket_the_cutoff_cuts_and_goes_in_batches(repository: Repository) -> None:
    target_id, query_id, plan_ids = _ids(repository)
    base = {"target_id": target_id, "query_id": query_id, "execution_type": 0, "executions": 1}
    values = {"errors": 0, "source": "test", "source_rows": 4}
    rows = [
        {**base, **values, "plan_id": plan_id, "grain": "hour", "interval_start": start,
         "interval_end": start + HOUR}
        for plan_id in plan_ids
        for start in (T0 + h * HOUR for h in range(6))
    ] + [
        {**base, **values, "plan_id": plan_id, "grain": "day", "interval_start": T0 - timedelta(days=d),
         "interval_end": T0 - timedelta(days=d - 1)}
        for plan_id in plan_ids
        for d in (1, 2)
    ]  # fmt: skip
    with repository.engine.begin() as connection:
        connection.execute(runtime_stats_rollup.insert(), rows)
    now = T0 + timedelta(days=30, hours=3, minutes=30)  # cutoff 03:30 on day 0
    with _statements(repository.engine) as statements:
        deleted = RetentionStore(repository).purge(now=now, batch_rows=3)
    # day rows (all before day 0) and the hours starting 00:00-02:00 go; 03:00-04:00 is cut: it stays
    assert deleted["runtime_stats_rollup"] == 2 * 2 + 2 * 3
    with repository.engine.connect() as connection:
        left = connection.execute(
            select(runtime_stats_rollup.c.grain, runtime_stats_rollup.c.interval_start)
        ).all()
    assert sorted({start for _grain, start in left}) == [T0 + h * HOUR for h in (3, 4, 5)]
    rollup_deletes = [s for s in statements if "DELETE FROM runtime_stats_rollup" in s]
    if repository.engine.dialect.name == "postgresql":  # slices of whole hours: 2 rows each, > 3 together
        assert len(rollup_deletes) == 6
    else:
        assert len(rollup_deletes) == 4  # 10 rows, batches of 3


# -- the schema an upgrade gives -------------------------------------------------------------------


@pytest.mark.postgres
def test_reads_and_the_purge_use_partition_and_index_ranges(postgres: Any) -> None:
    from planmon.store.connection import create_repository_engine
    from planmon.store.stats import StatsStore
    from tests.unit.store.conftest import fresh_postgres_url

    repository = Repository(create_repository_engine(fresh_postgres_url(postgres)))
    try:
        repository.init_schema()
        collection = CollectionStore(repository)
        for number in range(12):  # a fleet: the analysis reads one batch of targets out of many
            target_id, query_id, plan_ids = _ids(repository, name=f"t{number}", plans=4)
            collection.upsert_runtime_stats(_rows(target_id, query_id, plan_ids, T0, hours=5 * 24))
        with repository.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        store = StatsStore(repository)
        reads = {
            "window_rows": lambda: store.window_rows(
                T0 + timedelta(days=2), T0 + timedelta(days=2, hours=6), target_ids=[target_id]
            ),
            "baseline_moments": lambda: store.baseline_moments(
                T0 + timedelta(days=1), T0 + timedelta(days=2), target_ids=[target_id]
            ),
        }
        for name, read in reads.items():
            plan = _explained(repository, read)
            stats_scans = [line for line in plan if "runtime_stats_p" in line]
            # one day partition, read through the (target_id, interval_start) index
            day = "runtime_stats_p20261203" if name == "window_rows" else "runtime_stats_p20261202"
            assert _partitions_in(stats_scans) == {day}, (name, plan)
            assert any("target_id_interval_start_idx" in line for line in stats_scans), (name, plan)
        batch = _explained(
            repository,
            lambda: purge_before(
                repository.engine, runtime_stats, "interval_start", T0 + timedelta(days=2, hours=5), 4
            ),
            statement_prefix="DELETE",
        )
        assert _partitions_in(batch) == {"runtime_stats_p20261203"}, batch  # days 0, 1 were dropped
        # one slice of the interval_start index range, deleted in one pass over it
        assert any("Index Scan on runtime_stats_p20261203_interval_start_idx" in line for line in batch), (
            batch
        )
        assert any(line.startswith("Index Cond: ((interval_start >=") for line in batch), batch
    finally:
        repository.close()


def _partitions_in(plan: list[str]) -> set[str]:
    return {name for line in plan for name in re.findall(r"runtime_stats_p\d{8}(?!\w)", line)}


def _explained(repository: Repository, action: Any, *, statement_prefix: str = "SELECT") -> list[str]:
    """EXPLAIN (with sequential scans disabled, so the plan shows which ranges an index can serve:
    the tables of a test are too small for the planner to want one) of the first statement
    ``action`` sends that starts with ``statement_prefix`` and reads runtime_stats."""
    captured: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        wanted = statement.lstrip().upper().startswith(statement_prefix) and "runtime_stats" in statement
        if wanted and not captured:
            captured.append((statement, parameters))

    event.listen(repository.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(repository.engine, "before_cursor_execute", record)
    statement, parameters = captured[0]
    with repository.engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        connection.rollback()
    return [str(row[0]).strip() for row in rows]


def test_purge_of_rollups_in_small_batches_deletes_exactly_what_is_due(repository: Repository) -> None:
    """Many rows share each time (every plan's hour): batches that end inside a time must neither
    skip nor repeat rows, and rows the condition keeps (a bucket the cutoff cuts) stay."""
    target_id, query_id, plan_ids = _ids(repository, plans=5)
    base = {"target_id": target_id, "query_id": query_id, "executions": 1, "errors": 0, "source_rows": 1}
    rows = [
        {**base, "plan_id": plan_id, "grain": grain, "execution_type": execution_type,
         "interval_start": T0 + h * step, "interval_end": T0 + (h + 1) * step}
        for grain, step, count in (("hour", HOUR, 30), ("day", timedelta(days=1), 3))
        for h in range(count)
        for plan_id in plan_ids
        for execution_type in (0, 3)
    ]  # fmt: skip
    with repository.engine.begin() as connection:
        connection.execute(runtime_stats_rollup.insert(), rows)
    now = T0 + timedelta(days=30, hours=20, minutes=30)  # cutoff 20:30 on day 0
    cutoff = T0 + timedelta(hours=20, minutes=30)
    deleted = RetentionStore(repository).purge(now=now, batch_rows=7)
    due = [r for r in rows if r["interval_end"] <= cutoff]
    assert deleted["runtime_stats_rollup"] == len(due) == 200  # hours 00-19: 20 x 5 plans x 2 types
    with repository.engine.connect() as connection:
        left = connection.execute(select(func.count()).select_from(runtime_stats_rollup)).scalar_one()
    assert left == len(rows) - len(due)


def test_hour_slices_group_consecutive_hours_up_to_the_batch_and_end_at_the_cutoff() -> None:
    from planmon.store.partitions import _slices

    hours = [(T0 + h * HOUR, 2) for h in range(5)]
    cutoff = T0 + 4 * HOUR + timedelta(minutes=30)
    assert list(_slices(hours, 4, cutoff)) == [
        (T0, T0 + 2 * HOUR),
        (T0 + 2 * HOUR, T0 + 4 * HOUR),
        (T0 + 4 * HOUR, cutoff),
    ]
    # an hour holding more than a batch is a slice of its own; gaps between hours are skipped over
    crowded = [(T0, 10), (T0 + 3 * HOUR, 1), (T0 + 5 * HOUR, 1)]
    assert list(_slices(crowded, 3, T0 + 6 * HOUR)) == [(T0, T0 + 3 * HOUR), (T0 + 3 * HOUR, T0 + 6 * HOUR)]
    assert list(_slices([], 3, T0)) == []
