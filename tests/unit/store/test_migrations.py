"""Migrations create exactly the schema in store/schema.py, go down a step and up again; 0007
rebuilds runtime_stats (natural primary key, day partitions on PostgreSQL) and 0008 narrows both
runtime-stats tables, each keeping every row."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, Table, inspect, select

from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository, migrate
from planmon.store.collection import CollectionStore
from planmon.store.partitions import partitions
from planmon.store.retention import RetentionStore
from planmon.store.schema import metadata, runtime_stats

T0 = datetime(2026, 11, 29, 18)


def _tables(repository: Repository) -> set[str]:
    with repository.engine.connect() as connection:
        names = set(inspect(connection).get_table_names()) - {"alembic_version"}
        found = partitions(connection, runtime_stats) or []
    return names - {p.name for p in found}


def test_upgrade_from_empty_creates_every_table(empty_repository: Repository) -> None:
    assert empty_repository.schema_revision() is None
    assert empty_repository.init_schema() == migrate.head_revision()
    assert _tables(empty_repository) == set(metadata.tables)


def test_migrated_schema_matches_the_metadata(repository: Repository) -> None:
    assert migrate.schema_differences(repository.engine) == []


def test_a_repository_made_from_the_metadata_matches_a_migrated_one(empty_repository: Repository) -> None:
    metadata.create_all(empty_repository.engine)
    assert migrate.schema_differences(empty_repository.engine) == []


def test_downgrade_one_step_then_upgrade_again(repository: Repository) -> None:
    head = migrate.head_revision()
    migrate.downgrade(repository.engine, "-1")
    assert repository.schema_revision() != head
    assert migrate.schema_differences(repository.engine), "the last migration's downgrade changed nothing"
    assert repository.init_schema() == head
    assert migrate.schema_differences(repository.engine) == []


def test_init_is_idempotent_and_keeps_data(repository: Repository) -> None:
    repository.set_setting("retention_days", "45")
    repository.init_schema()
    assert RetentionStore(repository).retention_days() == 45


# -- 0007: runtime_stats rebuilt ------------------------------------------------------------------


def _seed_0006(repository: Repository) -> list[dict[str, Any]]:
    """Rows over three UTC days written into the 0006 table (with its surrogate id)."""
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="t", engine="sqlserver", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_ids = collection.upsert_plans(target_id, [PlanRecord("p1", "q"), PlanRecord("p2", "q")])
    rows = [
        {
            "target_id": target_id,
            "plan_id": plan_id,
            "query_id": query_id,
            "interval_start": T0 + timedelta(hours=h),
            "interval_end": T0 + timedelta(hours=h + 1),
            "execution_type": execution_type,
            "executions": 10 + h,
            "errors": execution_type,
            "cpu_us_mean": 100.0 * h,
            "duration_us_stdev": 0.5,
            "source": "query_store",
        }
        for h in range(32)  # 18:00 on day 0 to 01:00 on day 2
        for plan_id in sorted(plan_ids.values())
        for execution_type in (0, 3)
    ]
    old = Table("runtime_stats", MetaData(), autoload_with=repository.engine)
    assert "id" in old.c
    with repository.engine.begin() as connection:
        connection.execute(old.insert(), rows)
    return rows


def _stored(repository: Repository) -> list[tuple[Any, ...]]:
    table = Table("runtime_stats", MetaData(), autoload_with=repository.engine)
    columns = [table.c[name] for name in runtime_stats.c.keys()]  # noqa: SIM118
    with repository.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(*columns).order_by(*columns[:6]))]


def test_upgrade_from_0006_keeps_every_row_and_gives_the_fresh_schema(empty_repository: Repository) -> None:
    repository = empty_repository
    migrate.upgrade(repository.engine, "0006")
    rows = _seed_0006(repository)
    before = _stored(repository)
    assert len(before) == len(rows) == 128

    assert repository.init_schema() == migrate.head_revision()
    assert migrate.schema_differences(repository.engine) == []
    assert _stored(repository) == before
    assert "id" not in {c["name"] for c in inspect(repository.engine).get_columns("runtime_stats")}
    if repository.engine.dialect.name == "postgresql":
        with repository.engine.connect() as connection:
            found = partitions(connection, runtime_stats)
        assert found is not None
        assert [p.lower.date() for p in found if p.lower] == [
            date(2026, 11, 29),
            date(2026, 11, 30),
            date(2026, 12, 1),
        ]
    # the upgraded table takes the same idempotent writes as a fresh one, on old and new days
    rows = [{name: value for name, value in row.items() if name != "source"} for row in rows]  # 0008
    collection = CollectionStore(repository)
    collection.upsert_runtime_stats(rows)
    later = [{**row, "interval_start": row["interval_start"] + timedelta(days=3),
              "interval_end": row["interval_end"] + timedelta(days=3)} for row in rows[:4]]  # fmt: skip
    collection.upsert_runtime_stats(later)
    assert len(_stored(repository)) == 132


def test_downgrade_to_0006_keeps_every_row(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = repository.add_target(TargetSpec(name="t", engine="postgres", conn_id="c")).id
    query_id = collection.upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_id = collection.upsert_plans(target_id, [PlanRecord("p", "q")])["p"]
    collection.upsert_runtime_stats([
        {"target_id": target_id, "plan_id": plan_id, "query_id": query_id, "executions": h + 1,
         "interval_start": T0 + timedelta(hours=h), "interval_end": T0 + timedelta(hours=h + 1),
}
        for h in range(12)
    ])  # fmt: skip
    before = _stored(repository)
    migrate.downgrade(repository.engine, "0006")
    assert _stored(repository) == before
    assert [c["name"] for c in inspect(repository.engine).get_columns("runtime_stats")] == [
        "id",
        *runtime_stats.c.keys(),
        "source",  # 0008 dropped it; its downgrade restores it from target.engine
    ]
    old = Table("runtime_stats", MetaData(), autoload_with=repository.engine)
    with repository.engine.connect() as connection:
        ids = connection.execute(select(old.c.id)).scalars().all()
    assert len(set(ids)) == 12 and None not in ids  # every row numbered again
    migrate.upgrade(repository.engine)
    assert _stored(repository) == before
    assert migrate.schema_differences(repository.engine) == []


# -- 0008: no per-row source; the rollup keyed by time first --------------------------------------


def _stats_tables(repository: Repository) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both runtime-stats tables as the database holds them, columns by name."""
    rows = {}
    for name in ("runtime_stats", "runtime_stats_rollup"):
        table = Table(name, MetaData(), autoload_with=repository.engine)
        columns = sorted(table.c, key=lambda column: column.name)
        with repository.engine.connect() as connection:
            rows[name] = [tuple(row) for row in connection.execute(select(*columns).order_by(*columns))]
    return rows


def test_0008_keeps_every_row_both_ways_and_restores_source_from_the_target(
    empty_repository: Repository,
) -> None:
    repository = empty_repository
    migrate.upgrade(repository.engine, "0007")
    target_id = repository.add_target(TargetSpec(name="t", engine="sqlserver", conn_id="c")).id
    query_id = CollectionStore(repository).upsert_queries(target_id, [QueryRecord("q")])[("", "q")]
    plan_ids = sorted(
        CollectionStore(repository)
        .upsert_plans(target_id, [PlanRecord("p1", "q"), PlanRecord("p2", "q")])
        .values()
    )
    common = {
        "target_id": target_id,
        "query_id": query_id,
        "executions": 3,
        "errors": 0,
        "source": "sqlserver",
    }
    fine = [{**common, "plan_id": p, "execution_type": e, "interval_start": T0 + timedelta(hours=h),
             "interval_end": T0 + timedelta(hours=h + 1)}
            for h in range(30) for p in plan_ids for e in (0, 3)]  # fmt: skip
    rolled = [{**common, "plan_id": p, "execution_type": 0, "grain": grain, "source_rows": 4,
               "interval_start": T0 - step * n, "interval_end": T0 - step * (n - 1)}
              for grain, step in (("hour", timedelta(hours=1)), ("day", timedelta(days=1)))
              for n in range(1, 4) for p in plan_ids]  # fmt: skip
    CollectionStore(repository).ensure_runtime_stats_partitions(T0, T0 + timedelta(hours=30))
    with repository.engine.begin() as connection:
        for name, rows in (("runtime_stats", fine), ("runtime_stats_rollup", rolled)):
            connection.execute(Table(name, MetaData(), autoload_with=connection).insert(), rows)
    before = _stats_tables(repository)
    assert [len(rows) for rows in before.values()] == [120, 12]

    assert repository.init_schema() == migrate.head_revision()
    assert migrate.schema_differences(repository.engine) == []
    columns = {name: [c["name"] for c in inspect(repository.engine).get_columns(name)] for name in before}
    assert all("source" not in names for names in columns.values())
    without_source = {
        name: [tuple(v for c, v in zip(sorted([*columns[name], "source"]), row, strict=True) if c != "source")
               for row in rows]
        for name, rows in before.items()
    }  # fmt: skip
    assert _stats_tables(repository) == without_source
    assert inspect(repository.engine).get_pk_constraint("runtime_stats_rollup")["constrained_columns"] == [
        "interval_start", "grain", "plan_id", "execution_type",
    ]  # fmt: skip
    migrate.downgrade(repository.engine, "0007")
    assert _stats_tables(repository) == before  # source back, from target.engine
    assert inspect(repository.engine).get_pk_constraint("runtime_stats_rollup")["constrained_columns"] == [
        "plan_id", "grain", "interval_start", "execution_type",
    ]  # fmt: skip


# -- 0009: capture statistics; older runs' statuses rewritten -------------------------------------


def test_0009_rewrites_older_run_statuses_from_their_aspects(empty_repository: Repository) -> None:
    repository = empty_repository
    migrate.upgrade(repository.engine, "0008")
    target_id = repository.add_target(TargetSpec(name="t", engine="postgres", conn_id="c")).id
    ok = {"status": "ok", "hint": None, "detail": None}
    failed_plans = {"status": "error", "hint": "plan capture failed", "detail": "closed"}
    off = {"status": "unavailable", "hint": "turn it on", "detail": None}
    stored = {  # status, aspects as runs before 0009 wrote them -> what they say from 0009 on
        "ok": ("ok", {"runtime_stats": ok, "plans": ok}),
        "ok-with-a-failed-aspect": ("ok", {"runtime_stats": ok, "plans": failed_plans}),
        "partial": ("partial", {"runtime_stats": ok, "plans": off}),
        "not_backfillable": ("not_backfillable", {"runtime_stats": off}),
        "failed": ("failed", {"runtime_stats": ok, "connection": {"status": "error", "hint": "down"}}),
    }
    rows = [
        {"target_id": target_id, "interval_start": T0 + timedelta(minutes=15 * n),
         "interval_end": T0 + timedelta(minutes=15 * (n + 1)), "status": status, "aspects": aspects,
         "started_at": T0, "rows_collected": 0, "plans_captured": 0}
        for n, (status, aspects) in enumerate(stored.values())
    ]  # fmt: skip
    table = Table("collection_run", MetaData(), autoload_with=repository.engine)
    with repository.engine.begin() as connection:
        connection.execute(table.insert(), rows)

    assert repository.init_schema() == migrate.head_revision()
    with repository.engine.connect() as connection:
        after = connection.execute(
            select(table.c.status, table.c.aspects).order_by(table.c.interval_start)
        ).all()
    by_case = dict(zip(stored, after, strict=True))
    assert {case: row.status for case, row in by_case.items()} == {
        "ok": "ok",
        "ok-with-a-failed-aspect": "error",
        "partial": "degraded",
        "not_backfillable": "not_backfillable",
        "failed": "error",
    }
    failed_aspects = by_case["failed"].aspects
    assert (
        failed_aspects["runtime_stats"]["status"] == "error"
        and "nothing" in failed_aspects["runtime_stats"]["hint"]
    )
    assert by_case["ok-with-a-failed-aspect"].aspects == stored["ok-with-a-failed-aspect"][1]
    # the newest run failed, so collection resumes after the one before it
    assert CollectionStore(repository).last_collected_until(target_id) == T0 + timedelta(minutes=60)
