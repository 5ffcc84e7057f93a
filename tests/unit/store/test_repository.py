"""The repository's API: targets, idempotent writes, reads, audit log and retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from planmon.errors import ConfigError, PlanmonError
from planmon.model import PlanRecord, QueryRecord, TargetSpec
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.retention import RetentionStore
from planmon.store.schema import alert, audit_log, plan, regression, remediation, runtime_stats

T0 = datetime(2026, 11, 20, 12, 0)


def _target(repository: Repository, name: str = "orders-prod") -> int:
    return repository.add_target(TargetSpec(name=name, engine="postgres", conn_id="orders_pg")).id


def _stats_rows(
    target_id: int, plan_id: int, query_id: int, hours: int, executions: int = 10
) -> list[dict[str, Any]]:
    return [
        {
            "target_id": target_id,
            "plan_id": plan_id,
            "query_id": query_id,
            "interval_start": T0 + timedelta(hours=h),
            "interval_end": T0 + timedelta(hours=h + 1),
            "execution_type": 0,
            "executions": executions + h,
            "cpu_us_mean": 1000.0 + h,
            "cpu_us_stdev": 10.0,
            "duration_us_mean": 1500.0 + h,
        }
        for h in range(hours)
    ]


def _seed(repository: Repository) -> tuple[int, int, int]:
    collection = CollectionStore(repository)
    target_id = _target(repository)
    query_ids = collection.upsert_queries(target_id, [QueryRecord("q1", query_text="SELECT ? FROM t")])
    plan_ids = collection.upsert_plans(target_id, [PlanRecord("p1", "q1", shape_hash="aa", body=b"{}")])
    return target_id, plan_ids["p1"], query_ids[("", "q1")]


# -- targets ---------------------------------------------------------------------------------------


def test_target_lifecycle_is_audited(repository: Repository) -> None:
    spec = TargetSpec(
        name="orders-prod",
        engine="sqlserver",
        conn_id="orders_mssql",
        environment="prod",
        tags={"team": "payments"},
        databases=("Orders", "Billing"),
    )
    added = repository.add_target(spec)
    assert (added.engine, added.tags, added.databases, added.enabled) == (
        "sqlserver",
        {"team": "payments"},
        ("Orders", "Billing"),
        True,
    )
    assert repository.set_target_enabled("orders-prod", False).enabled is False
    assert [t.name for t in repository.list_targets(enabled_only=True)] == []
    repository.remove_target("orders-prod")
    assert repository.list_targets() == []
    actions = list(repository.audit_entries()["action"])
    assert actions == ["target.remove", "target.disable", "target.add"]


def test_duplicate_target_name_is_refused_and_nothing_changes(repository: Repository) -> None:
    _target(repository)
    with pytest.raises(ConfigError, match="already exists"):
        _target(repository)
    assert len(repository.list_targets()) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            TargetSpec(name="x", engine="oracle", conn_id="c"),
            "unknown engine 'oracle'.*sqlserver, postgres, mysql",
        ),
        (TargetSpec(name="bad name!", engine="mysql", conn_id="c"), "not valid"),
        (TargetSpec(name="x", engine="mysql", conn_id=" "), "connection id"),
        (TargetSpec(name="x", engine="mysql", conn_id="c", remediation_mode="yolo"), "remediation mode"),
    ],
)
def test_invalid_targets_get_clear_errors(repository: Repository, spec: TargetSpec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        repository.add_target(spec)
    assert repository.list_targets() == []


def test_unknown_target_says_how_to_list_them(repository: Repository) -> None:
    with pytest.raises(ConfigError, match="planmon targets list"):
        repository.get_target("nope")


# -- idempotent writes -----------------------------------------------------------------------------


def test_same_runtime_stats_batch_twice_leaves_the_same_rows(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id, plan_id, query_id = _seed(repository)
    rows = _stats_rows(target_id, plan_id, query_id, hours=24)
    collection.upsert_runtime_stats(rows)
    first = collection.runtime_stats(T0, T0 + timedelta(days=1))
    collection.upsert_runtime_stats(rows)
    second = collection.runtime_stats(T0, T0 + timedelta(days=1))
    assert len(first) == len(second) == 24
    assert "id" not in first.columns  # the natural key is the primary key (ADR 0005)
    assert first.equals(second)


def test_a_rewritten_interval_updates_in_place(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id, plan_id, query_id = _seed(repository)
    collection.upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=2))
    corrected = _stats_rows(target_id, plan_id, query_id, hours=2, executions=99)
    collection.upsert_runtime_stats(corrected)
    frame = collection.runtime_stats(T0, T0 + timedelta(hours=2))
    assert list(frame["executions"]) == [99, 100]


def test_a_batch_of_new_and_existing_keys_updates_and_inserts(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id, plan_id, query_id = _seed(repository)
    collection.upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=2))
    collection.upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=4, executions=50))
    frame = collection.runtime_stats(T0, T0 + timedelta(hours=4))
    assert list(frame["executions"]) == [50, 51, 52, 53]


def test_runtime_stats_window_is_half_open(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id, plan_id, query_id = _seed(repository)
    collection.upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=3))
    frame = collection.runtime_stats(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert list(frame["interval_start"]) == [T0 + timedelta(hours=1)]


def test_runtime_stats_rows_are_checked_before_anything_is_written(repository: Repository) -> None:
    target_id, plan_id, query_id = _seed(repository)
    rows = _stats_rows(target_id, plan_id, query_id, hours=3)
    rows[2] = {k: v for k, v in rows[2].items() if k != "executions"}
    with pytest.raises(PlanmonError, match="lacks executions"):
        CollectionStore(repository).upsert_runtime_stats(rows)
    assert RetentionStore(repository).row_counts()["runtime_stats"] == 0


def test_a_failing_batch_writes_nothing(repository: Repository) -> None:
    target_id, plan_id, query_id = _seed(repository)
    rows = _stats_rows(target_id, plan_id, query_id, hours=1500)  # several statements on every backend
    rows[-1]["plan_id"] = 987654  # violates the foreign key only at the very end
    with pytest.raises(PlanmonError):
        CollectionStore(repository).upsert_runtime_stats(rows)
    assert RetentionStore(repository).row_counts()["runtime_stats"] == 0


def test_plan_body_is_stored_once_and_compressed(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = _target(repository)
    collection.upsert_queries(target_id, [QueryRecord("q1")])
    body = b"<ShowPlanXML>" + b"<RelOp/>" * 500 + b"</ShowPlanXML>"
    ids = collection.upsert_plans(target_id, [PlanRecord("p1", "q1", body=body, summary={"cost": 1})])
    again = collection.upsert_plans(target_id, [PlanRecord("p1", "q1", body=b"other", summary={"cost": 2})])
    assert ids == again
    assert repository.plan_bodies([ids["p1"]]) == {ids["p1"]: body}
    with repository.engine.connect() as connection:
        stored = connection.execute(select(plan.c.body, plan.c.summary)).one()
    assert len(stored.body) < len(body) / 10
    assert stored.summary == {"cost": 2}


def test_query_first_and_last_seen_only_widen(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = _target(repository)
    collection.upsert_queries(target_id, [QueryRecord("q1", query_text="SELECT ?")])
    with repository.engine.begin() as connection:
        connection.execute(update(plan.metadata.tables["query"]).values(first_seen=T0, last_seen=T0))
    collection.upsert_queries(target_id, [QueryRecord("q1", query_text=None)])
    with repository.engine.connect() as connection:
        row = connection.execute(select(plan.metadata.tables["query"])).one()
    assert row.first_seen == T0 and row.last_seen > T0
    assert row.query_text == "SELECT ?"


def test_plans_need_their_query(repository: Repository) -> None:
    target_id = _target(repository)
    with pytest.raises(PlanmonError, match="store queries before their plans"):
        CollectionStore(repository).upsert_plans(target_id, [PlanRecord("p1", "q-missing")])


def test_collection_run_retry_replaces_the_record(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = _target(repository)
    for status in ("failed", "ok"):
        collection.record_collection_run(
            target_id,
            T0,
            T0 + timedelta(minutes=15),
            status=status,
            aspects={"runtime_stats": {"status": status}},
            error="password=hunter2secret refused" if status == "failed" else None,
        )
    runs = collection.collection_runs(target_id=target_id)
    assert list(runs["status"]) == ["ok"]


def test_collection_errors_are_stored_without_secrets(repository: Repository) -> None:
    collection = CollectionStore(repository)
    target_id = _target(repository)
    collection.record_collection_run(
        target_id,
        T0,
        T0 + timedelta(minutes=15),
        status="failed",
        aspects={},
        error="password=hunter2secret x",
    )
    assert "hunter2secret" not in collection.collection_runs(target_id=target_id)["error"][0]


# -- audit log and retention -----------------------------------------------------------------------


def test_audit_log_has_no_update_or_delete_path() -> None:
    import inspect

    import planmon.store.collection
    import planmon.store.repository
    import planmon.store.retention

    for module in (planmon.store.repository, planmon.store.collection, planmon.store.retention):
        source = inspect.getsource(module)
        assert "update(audit_log" not in source and "delete(audit_log" not in source


def test_purge_removes_old_data_in_batches_and_keeps_what_must_stay(repository: Repository) -> None:
    target_id, plan_id, query_id = _seed(repository)
    CollectionStore(repository).upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=48))
    now = T0 + timedelta(days=30, hours=12)  # retention 30 days: the first 12 hours are older
    with repository.engine.begin() as connection:
        base = {
            "target_id": target_id,
            "query_id": query_id,
            "severity": "high",
            "metric": "cpu",
            "evidence": {},
            "first_detected": T0,
            "last_detected": T0,
        }
        connection.execute(
            insert(regression).values(kind="plan_change", status="open", open_key="open", **base)
        )
        connection.execute(
            insert(regression).values(kind="same_plan", status="resolved", open_key="r1", **base)
        )
        open_id = connection.execute(
            select(regression.c.id).where(regression.c.status == "open")
        ).scalar_one()
        connection.execute(
            insert(remediation).values(
                regression_id=open_id,
                target_id=target_id,
                action="analyze",
                state="proposed",
                sql_text="ANALYZE t",
                evidence={},
                created_at=T0,
                updated_at=T0,
            )
        )
    repository.audit("tester", "old.entry")
    retention = RetentionStore(repository)
    deleted = retention.purge(now=now, batch_rows=5)
    assert deleted["runtime_stats"] == 12
    assert deleted["regression"] == 1
    counts = retention.row_counts()
    assert counts["runtime_stats"] == 36
    assert counts["regression"] == 1 and counts["remediation"] == 1
    with repository.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_log)).scalar_one() >= 2
        remaining = connection.execute(select(func.min(runtime_stats.c.interval_start))).scalar_one()
    assert remaining == T0 + timedelta(hours=12)


def test_removing_a_target_removes_its_data_but_not_the_audit_log(repository: Repository) -> None:
    target_id, plan_id, query_id = _seed(repository)
    other_id = _target(repository, "other")
    CollectionStore(repository).upsert_runtime_stats(_stats_rows(target_id, plan_id, query_id, hours=3))
    with repository.engine.begin() as connection:
        regression_id = connection.execute(
            insert(regression)
            .values(
                target_id=target_id,
                query_id=query_id,
                kind="plan_change",
                status="open",
                open_key="open",
                severity="high",
                metric="cpu",
                evidence={},
                first_detected=T0,
                last_detected=T0,
            )
            .returning(regression.c.id)
        ).scalar_one()
        connection.execute(
            insert(alert).values(
                dedup_key=f"regression:{regression_id}",
                regression_id=regression_id,
                channel="log",
                status="sent",
                payload={},
                created_at=T0,
            )
        )
    repository.remove_target("orders-prod")
    counts = RetentionStore(repository).row_counts()
    assert [t.id for t in repository.list_targets()] == [other_id]
    assert all(counts[name] == 0 for name in ("query", "plan", "runtime_stats", "regression", "alert"))
    assert counts["audit_log"] >= 3


def test_retention_setting_must_be_a_positive_number(repository: Repository) -> None:
    repository.set_setting("retention_days", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        RetentionStore(repository).purge()
