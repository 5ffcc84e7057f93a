"""The UI's read queries: bounded pages and a fixed number of statements at fleet scale, the
timeline's execution-weighted means, history of a query's remediations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from planmon.config import Settings
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.store.ui_queries import MAX_PAGE, RegressionFilter, UIQueries
from tests.harness.ui_seed import SLOW, T0, seed_fleet, seed_scale


@contextmanager
def statements(repository: Repository) -> Iterator[list[str]]:
    """Every SQL statement the repository's engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(repository.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(repository.engine, "before_cursor_execute", record)


def _bounded(statement: str) -> bool:
    """A statement reads a bounded number of rows: a page (LIMIT), a count, grouped or keyed by ids."""
    upper = statement.upper()
    return any(word in upper for word in (" LIMIT ", "COUNT(", "GROUP BY", " IN (", " IN ( ")) or (
        "WHERE" in upper and ".ID =" in upper
    )


def test_empty_repository_pages_are_empty(repository: Repository) -> None:
    queries = UIQueries(repository)
    assert queries.targets_page().as_dict() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert queries.regressions_page().total == 0
    assert queries.open_regression_counts() == {"total": 0, "by_severity": {}, "by_kind": {}}
    assert queries.regression(1) is None and queries.plan(1) is None
    assert queries.timeline(1, T0, SLOW).points == []
    assert queries.query_interval(1, SLOW) is None


def test_timeline_weights_means_by_executions_across_execution_types(
    repository: Repository, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    fleet = seed_fleet(repository, settings)
    start = SLOW + timedelta(hours=1)
    CollectionStore(repository).upsert_runtime_stats([{
        "target_id": fleet.target_id, "plan_id": fleet.plan_ids["p-seq"], "query_id": fleet.query_id,
        "interval_start": start, "interval_end": start + timedelta(hours=1), "execution_type": 3,
        "executions": 200, "cpu_us_mean": 80_000.0, "duration_us_mean": None,
    }])  # fmt: skip
    timeline = UIQueries(repository).timeline(fleet.query_id, start, start + timedelta(hours=1))
    [point] = timeline.points
    assert point.executions == 800
    assert point.cpu_us_mean == pytest.approx((600 * 40_000 + 200 * 80_000) / 800)
    assert point.duration_us_mean == pytest.approx(52_000.0)  # the aborted row has no duration
    assert timeline.plans[fleet.plan_ids["p-seq"]]["plan_key"] == "p-seq"


def test_a_querys_interval_is_read_from_its_newest_rows_before_the_moment(
    repository: Repository, tmp_path: Path
) -> None:
    fleet = seed_fleet(repository, Settings(home=tmp_path))  # hourly rows from T0
    end = T0 + timedelta(days=10)
    quarter = timedelta(minutes=15)
    CollectionStore(repository).upsert_runtime_stats([
        {"target_id": fleet.target_id, "plan_id": fleet.plan_ids["p-seq"], "query_id": fleet.query_id,
         "interval_start": end + quarter * i, "interval_end": end + quarter * (i + 1), "executions": 1,
         "cpu_us_mean": 1.0}
        for i in range(30)
    ])  # fmt: skip
    queries = UIQueries(repository)
    assert queries.query_interval(fleet.query_id, SLOW) == timedelta(hours=1)
    assert queries.query_interval(fleet.query_id, end + timedelta(days=1)) == timedelta(minutes=15)
    assert queries.query_interval(fleet.query_id, T0) is None  # nothing starts before the first row
    assert queries.query_interval(fleet.query_id, T0 + timedelta(days=60)) is None  # over a month later


def test_remediation_ledger_of_the_query(repository: Repository, tmp_path: Path) -> None:
    fleet = seed_fleet(repository, Settings(home=tmp_path))
    queries = UIQueries(repository)
    [item] = queries.remediations(fleet.target_id, fleet.query_id)
    assert (item["id"], item["state"], item["regression_kind"]) == (
        fleet.remediation_id,
        "proposed",
        "plan_change",
    )
    assert queries.remediations(fleet.other_target_ids[0], fleet.query_id) == []
    entries = queries.audit_entries([f"remediation:{fleet.remediation_id}"])
    assert [e["action"] for e in entries] == ["remediation.propose"]


@pytest.mark.slow
def test_fleet_scale_pages_are_bounded(empty_repository: Repository) -> None:
    """1,000 targets and 10,000 regressions: a page is a fixed number of statements, each bounded,
    and returns one page of rows, not the table."""
    repository = empty_repository
    repository.init_schema()
    seed_scale(repository, targets=1000, regressions=10_000)
    queries = UIQueries(repository)
    with statements(repository) as seen:
        page = queries.targets_page(limit=50, offset=500)
    assert len(seen) == 4 and all(_bounded(s) for s in seen), seen
    assert (len(page.items), page.total) == (50, 1000)
    assert page.items[0]["name"] == "t00500" and page.items[0]["open_regressions"] == 7

    with statements(repository) as seen:
        counts = queries.open_regression_counts()
    assert len(seen) == 1 and counts["total"] == sum(1 for i in range(10_000) if i % 3)

    with statements(repository) as seen:
        regressions = queries.regressions_page(
            RegressionFilter(status="open", severity="critical"), offset=9000
        )
    assert len(seen) == 2 and all(_bounded(s) for s in seen), seen
    assert regressions.total == sum(1 for i in range(10_000) if i % 3 and i % 4 == 0)
    assert regressions.items == []  # past the end: an empty page, not an error
    last = queries.regressions_page(RegressionFilter(status=None), limit=MAX_PAGE + 500, offset=9_950)
    assert (len(last.items), last.limit) == (50, MAX_PAGE)
    assert last.items[0]["id"] > last.items[-1]["id"]  # newest first
