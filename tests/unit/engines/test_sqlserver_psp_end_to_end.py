"""A SQL Server 2022 parameter-sensitive query with three variants, one of which regressed, from the
recorded result sets through collection, the repository and analysis to the remediation proposal; and a
SQL Server 2025 secondary-replica collection whose temporary negative ids are never stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from planmon import collect
from planmon.analysis.service import analyze_repository
from planmon.config import load_settings
from planmon.engines.sqlserver import remediation as sqlserver
from planmon.model import Action, TargetSpec
from planmon.remediation.workflow import RemediationWorkflow
from planmon.store import Repository
from planmon.store.connection import create_repository_engine
from planmon.store.regressions import RegressionStore
from planmon.store.schema import collection_run, plan
from planmon.store.schema import query as query_table
from tests.unit.engines.test_sqlserver_adapter import FakeServer
from tests.unit.engines.test_sqlserver_current import PSP, REPLICAS
from tests.unit.remediation.test_sqlserver import _result

WINDOW = (datetime(2026, 11, 23, 6, 0), datetime(2026, 11, 23, 8, 0))
SETTINGS = {"PLANMON_BASELINE_DAYS": "1"}


@pytest.fixture
def repository(tmp_path: Path) -> Any:
    with Repository(create_repository_engine(URL.create("sqlite", database=str(tmp_path / "p.db")))) as repo:
        repo.init_schema()
        yield repo


def _collect(repository: Repository, answers: dict[Any, Any], name: str) -> collect.CollectionSummary:
    target = repository.add_target(
        TargetSpec(name=name, engine="sqlserver", conn_id="sales", databases=("Sales",))
    )
    server = FakeServer(answers)
    # the recorded set holds every interval of the day: one run stores the baseline hours and the window
    return collect.collect_target(
        repository,
        target,
        WINDOW[0],
        WINDOW[1],
        settings=load_settings(SETTINGS),
        connect=server.connect,
        now=WINDOW[1] + timedelta(minutes=1),
    )


def _queries(repository: Repository) -> dict[str, Any]:
    with repository.engine.connect() as connection:
        return {row.query_key: row for row in connection.execute(select(query_table))}


def test_only_the_regressed_variant_is_found_and_its_own_plan_is_proposed(repository: Repository) -> None:
    summary = _collect(repository, PSP, "sales")
    assert summary.status == "ok"
    queries = _queries(repository)
    assert set(queries) == {"21", "22", "23"}  # variants are their own queries; parent 20 ran nothing itself
    assert {(q.parent_query_key, q.dispatcher_plan_key) for q in queries.values()} == {("20", "30")}
    with repository.engine.connect() as connection:
        stored_plans = {row.plan_key for row in connection.execute(select(plan.c.plan_key))}
    assert stored_plans == {"31", "32", "33", "34"}  # the dispatcher plan 30 has no stats: never a candidate

    analyze_repository(
        repository, window_start=WINDOW[0], window_end=WINDOW[1], settings=load_settings(SETTINGS)
    )
    regressions = RegressionStore(repository).regressions()
    # variants 21 and 23 differ 300x in CPU but each is steady: not a regression for that alone
    assert list(regressions.query_key) == ["22"]
    found = regressions.iloc[0]
    assert (found.kind, found.baseline_plan_key, found.current_plan_key) == ("plan_change", "32", "34")

    def read_live(context: Any, ours: frozenset[int]) -> sqlserver.QueryStoreState:
        return sqlserver.state_from_results(
            int(context.query_key),
            _result("remediation_query_plans.psp_free"),
            major_version=16,
            planmon_forced=ours,
            variant_rows=_result("remediation_query_variants.psp"),
        )

    workflow = RemediationWorkflow(repository, load_settings(SETTINGS), forcing_state_reader=read_live)
    proposed = workflow.propose(int(found.id))
    assert proposed.remediation.action is Action.FORCE_PLAN
    assert proposed.remediation.statements[0].params == (22, 32)  # the variant's query and plan, not 20 / 30
    assert (proposed.remediation.evidence.query_id, proposed.remediation.evidence.plan_id) == (22, 32)


def test_a_secondary_replicas_temporary_ids_are_never_stored(repository: Repository) -> None:
    summary = _collect(repository, REPLICAS, "sales-2025")
    assert summary.status == "ok"
    queries = _queries(repository)
    assert set(queries) == {"7"} and queries["7"].replica_group_id == 1
    with repository.engine.connect() as connection:
        plan_keys = {row.plan_key for row in connection.execute(select(plan.c.plan_key))}
        aspects = connection.execute(select(collection_run.c.aspects)).scalar_one()
    assert all(not key.startswith("-") for key in plan_keys)
    detail = aspects["runtime_stats"]["detail"]
    assert "1 row(s) with a temporary (negative) query or plan id" in detail
    assert "replica group(s) 2 skipped" in detail
