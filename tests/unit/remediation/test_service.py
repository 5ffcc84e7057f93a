"""The remediation state machine and its rails on a repository, with a recording fake target.

Covers: approval required before anything runs; idempotent apply; rate limit; maintenance window; a
plan forced by someone else; mode propose (dry run) and off; an action that does not help is rolled
back, recorded in the ledger, and not proposed again without saying so; failures scrubbed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from planmon.config import Settings, load_settings
from planmon.engines.sqlserver import remediation as sqlserver
from planmon.errors import EngineError, RefusalReason, RemediationRefused
from planmon.model import Action, Proposal, Remediation, Statement
from planmon.model import RemediationState as State
from planmon.remediation import rails, workflow
from planmon.remediation.verify import Outcome
from planmon.remediation.workflow import FixedConnections, ForcingStateReader, RemediationWorkflow
from planmon.store import Repository
from planmon.store.regressions import RegressionStore
from planmon.store.remediations import RemediationStore, StaleTransition
from planmon.store.schema import plan
from tests.unit.remediation.conftest import FakeTarget, Seeded, add_stats, seed_regression

SETTINGS = load_settings(
    {"PLANMON_REMEDIATION_VERIFY_EXECUTIONS": "40", "PLANMON_REMEDIATION_VERIFY_MINUTES": "10"}
)
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0)
RECREATE = Proposal(
    action=Action.RECREATE_INDEX,
    database_name="shop",
    statements=(
        Statement("CREATE INDEX CONCURRENTLY orders_customer ON public.orders USING btree (customer)"),
    ),
    rollback=(Statement('DROP INDEX CONCURRENTLY IF EXISTS "public"."orders_customer"'),),
    expected_effect="the baseline plan's index is back",
)


def _workflow(
    repository: Repository,
    target: FakeTarget | None = None,
    *,
    settings: Settings = SETTINGS,
    reader: ForcingStateReader | None = None,
) -> RemediationWorkflow:
    """The workflow with the fake target as the remediation connection (None: none can be opened)."""
    connections = FixedConnections(remediate=target.connect if target is not None else None)
    return RemediationWorkflow(repository, settings, connections, forcing_state_reader=reader)


def _propose(seeded: Seeded, proposal: Proposal = RECREATE) -> int:
    store = RemediationStore(seeded.repository)
    row, _created = store.create(
        store.regression_context(seeded.regression_id), proposal, actor="test", dag_run_id="r1"
    )
    return int(row["id"])


def _approved(seeded: Seeded, proposal: Proposal = RECREATE, reader: ForcingStateReader | None = None) -> int:
    remediation_id = _propose(seeded, proposal)
    steps = _workflow(seeded.repository, reader=reader)
    steps.check_rails(remediation_id, now=WEDNESDAY_NOON)
    steps.record_decision(remediation_id, approved=True, responded_by="dba_alice")
    return remediation_id


def _apply(
    seeded: Seeded,
    remediation_id: int,
    target: FakeTarget,
    at: datetime,
    reader: ForcingStateReader | None = None,
) -> Remediation:
    """Apply at ``at``; nothing was collected before, so the apply moment is ``at`` too."""
    return _workflow(seeded.repository, target, reader=reader).apply(remediation_id, now=at)


def test_nothing_runs_without_an_approval(repository: Repository, fake_target: FakeTarget) -> None:
    seeded = seed_regression(repository)
    remediation_id = _propose(seeded)
    with pytest.raises(RemediationRefused) as refused:
        _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    assert refused.value.reason is RefusalReason.NOT_APPROVED
    assert "Required Actions" in str(refused.value)
    assert fake_target.connections == 0


def test_a_rejection_is_final_and_names_who_rejected(repository: Repository, fake_target: FakeTarget) -> None:
    seeded = seed_regression(repository)
    remediation_id = _propose(seeded)
    row = _workflow(repository).record_decision(remediation_id, approved=False, responded_by="dba_bob")
    assert row.state == "rejected" and row.outcome_reason == "rejected by dba_bob"
    later = _workflow(repository).record_decision(remediation_id, approved=True, responded_by="dba_alice")
    assert later.state == "rejected"  # the first answer stands
    with pytest.raises(RemediationRefused):
        _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    assert fake_target.connections == 0


def test_a_timeout_rejects_as_planmon(repository: Repository) -> None:
    seeded = seed_regression(repository)
    remediation_id = _propose(seeded)
    _workflow(repository).record_decision(remediation_id, approved=False, responded_by=None)
    trail = RemediationStore(repository).audit_trail(remediation_id)
    assert trail[-1]["actor"] == workflow.TIMEOUT_ACTOR and trail[-1]["action"] == "remediation.rejected"


def test_apply_runs_once_with_timeouts_and_records_the_approver(
    repository: Repository, fake_target: FakeTarget
) -> None:
    seeded = seed_regression(repository)
    remediation_id = _approved(seeded)
    row = _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    again = _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)  # a retried task
    assert row.state == again.state == "applied" and row.approved_by == "dba_alice"
    assert fake_target.statements == [RECREATE.statements[0].sql]
    assert [params for sql, params in fake_target.sent if "set_config" in sql] == [
        ("5000ms",),
        ("1800000ms",),
    ]
    trail = [(e["action"], e["actor"]) for e in RemediationStore(repository).audit_trail(remediation_id)]
    assert trail == [
        ("remediation.propose", "test"),
        ("remediation.rails_passed", "planmon"),
        ("remediation.approved", "dba_alice"),
        ("remediation.rails_passed", "planmon"),
        ("remediation.applied", "planmon"),
    ]
    with pytest.raises(StaleTransition):
        RemediationStore(repository).transition(remediation_id, State.APPROVED, actor="x")


def test_rate_limit_refuses_the_next_action_in_the_hour(
    repository: Repository, fake_target: FakeTarget
) -> None:
    settings = load_settings({"PLANMON_REMEDIATION_MAX_ACTIONS_PER_HOUR": "1"})
    seeded = seed_regression(repository)
    first = _approved(seeded)
    _apply(seeded, first, fake_target, WEDNESDAY_NOON)
    second = _propose(
        seeded, Proposal(Action.ANALYZE, "shop", (Statement('ANALYZE "public"."orders"'),), (), "x")
    )
    with pytest.raises(RemediationRefused) as refused:
        _workflow(repository, settings=settings).check_rails(
            second, now=WEDNESDAY_NOON + timedelta(minutes=30)
        )
    assert refused.value.reason is RefusalReason.RATE_LIMIT
    row = RemediationStore(repository).get(second)
    assert row["state"] == "refused" and row["outcome_reason"].startswith("rate_limit: ")
    # an hour later the same rail lets a new proposal through
    third = _propose(seeded, Proposal(Action.ANALYZE, "shop", (Statement('ANALYZE "public"."t2"'),), (), "x"))
    _workflow(repository, settings=settings).check_rails(third, now=WEDNESDAY_NOON + timedelta(minutes=61))


def test_maintenance_window_is_checked_when_proposed_and_again_at_apply(
    repository: Repository, fake_target: FakeTarget
) -> None:
    policy = {"maintenance_windows": [{"start": "11:00", "end": "13:00", "days": ["wed"]}]}
    seeded = seed_regression(repository)
    RemediationStore(repository).set_policy("shop", policy, actor="dba")
    remediation_id = _approved(seeded)  # rails pass at Wednesday noon
    with pytest.raises(RemediationRefused) as refused:  # the approval came after the window closed
        _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON + timedelta(hours=2))
    assert refused.value.reason is RefusalReason.MAINTENANCE_WINDOW
    assert RemediationStore(repository).get(remediation_id)["state"] == "refused"
    assert fake_target.connections == 0


def test_a_plan_forced_by_someone_else_is_never_acted_on(repository: Repository) -> None:
    seeded = seed_regression(repository)
    with repository.engine.begin() as connection:
        connection.execute(
            update(plan)
            .where(plan.c.id == seeded.plan_ids["bad"])
            .values(is_forced=True, forcing_type="MANUAL")
        )
    remediation_id = _propose(seeded)
    with pytest.raises(RemediationRefused) as refused:
        _workflow(repository).check_rails(remediation_id, now=WEDNESDAY_NOON)
    assert refused.value.reason is RefusalReason.FORCED_BY_OTHERS and "plan bad (MANUAL)" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("mode", "reason"), [("propose", RefusalReason.DRY_RUN), ("off", RefusalReason.MODE_OFF)]
)
def test_modes_that_never_execute(repository: Repository, mode: str, reason: RefusalReason) -> None:
    seeded = seed_regression(repository, mode=mode)
    if mode == "off":
        with pytest.raises(RemediationRefused) as refused:
            _workflow(repository).propose(seeded.regression_id)
        assert refused.value.reason is reason
        return
    remediation_id = _propose(seeded)
    with pytest.raises(RemediationRefused) as refused:
        _workflow(repository).check_rails(remediation_id, now=WEDNESDAY_NOON)
    assert refused.value.reason is reason
    assert RemediationStore(repository).get(remediation_id)["state"] == "proposed"  # visible, never run


def test_an_action_that_does_not_help_is_rolled_back_and_remembered(
    repository: Repository, fake_target: FakeTarget
) -> None:
    seeded = seed_regression(repository)
    remediation_id = _approved(seeded)
    _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    early = _workflow(repository).verify(remediation_id, now=WEDNESDAY_NOON + timedelta(minutes=1))
    assert early.outcome is Outcome.WAITING  # no executions yet, and M minutes not over
    for minute in range(3):  # after the action, the query is as slow as when it regressed
        add_stats(seeded, WEDNESDAY_NOON + timedelta(minutes=minute), plan="bad", mean=1000.0)
    verdict = _workflow(repository).verify(remediation_id, now=WEDNESDAY_NOON + timedelta(minutes=3))
    assert verdict.outcome is Outcome.NOT_BETTER and verdict.post is not None and verdict.post.n == 150
    row = _workflow(repository, fake_target).conclude(remediation_id, verdict)
    assert row.state == "rolled_back" and row.outcome == "rolled_back"
    assert row.outcome_reason.startswith("not better: post-apply mean 1000")
    assert fake_target.statements[-1] == RECREATE.rollback[0].sql
    assert RegressionStore(repository).regressions()["status"].tolist() == ["open"]

    store = RemediationStore(repository)
    context = store.regression_context(seeded.regression_id)
    assert [(e["id"], e["state"]) for e in context.ledger] == [(remediation_id, "rolled_back")]
    analyze = Proposal(
        Action.ANALYZE, "shop", (Statement('ANALYZE "public"."orders"'),), (), "fresh statistics"
    )
    chosen, notes = workflow.choose(context, [RECREATE, analyze])
    assert chosen is analyze and "was tried on this query before and rolled back" in notes[0]
    chosen, notes = workflow.choose(context, [RECREATE])  # nothing else to offer: proposed, but said so
    assert chosen is RECREATE and notes and notes[0].startswith("recreate_index (remediation ")


def test_an_action_that_helps_is_kept_and_resolves_the_regression(
    repository: Repository, fake_target: FakeTarget
) -> None:
    seeded = seed_regression(repository)
    remediation_id = _approved(seeded)
    _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    add_stats(seeded, WEDNESDAY_NOON + timedelta(minutes=1), plan="good", mean=110.0)
    verdict = _workflow(repository).verify(remediation_id, now=WEDNESDAY_NOON + timedelta(minutes=2))
    assert verdict.outcome is Outcome.BETTER and verdict.back_at_baseline
    row = _workflow(repository, fake_target).conclude(remediation_id, verdict)
    assert row.state == "kept" and row.verification["post_apply"]["executions"] == 50
    assert RegressionStore(repository).regressions()["status"].tolist() == ["resolved"]
    assert _workflow(repository).conclude(remediation_id, verdict).state == "kept"


def test_too_few_executions_after_m_minutes_rolls_back(
    repository: Repository, fake_target: FakeTarget
) -> None:
    seeded = seed_regression(repository)
    remediation_id = _approved(seeded)
    _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON)
    verdict = _workflow(repository).verify(remediation_id, now=WEDNESDAY_NOON + timedelta(minutes=11))
    assert verdict.outcome is Outcome.INSUFFICIENT
    row = _workflow(repository, fake_target).conclude(remediation_id, verdict)
    assert row.state == "rolled_back" and "too few" in row.outcome_reason


def test_a_failing_statement_is_recorded_scrubbed_and_cleaned_up(repository: Repository) -> None:
    target = FakeTarget(fail_on="CREATE INDEX")
    seeded = seed_regression(repository)
    remediation_id = _approved(seeded)
    with pytest.raises(EngineError):
        _apply(seeded, remediation_id, target, WEDNESDAY_NOON)
    row = RemediationStore(repository).get(remediation_id)
    assert row["state"] == "failed" and "hunter2" not in row["outcome_reason"]
    assert "the partial index was dropped" in row["outcome_reason"]
    assert target.statements[-1] == RECREATE.rollback[0].sql


def test_auto_mode_runs_allow_listed_actions_without_a_person(repository: Repository) -> None:
    seeded = seed_regression(repository, mode="auto")
    store = RemediationStore(repository)
    target = store.regression_context(seeded.regression_id).target
    assert rails.needs_approval(target, Action.RECREATE_INDEX)  # no allow-list: a person decides
    store.set_policy("shop", {"allowed_actions": ["analyze"]}, actor="dba")
    target = store.regression_context(seeded.regression_id).target
    assert not rails.needs_approval(target, Action.ANALYZE)
    remediation_id = _propose(seeded)  # recreate_index is not on the allow-list: refused in every mode
    with pytest.raises(RemediationRefused) as refused:
        _workflow(repository).check_rails(remediation_id, now=WEDNESDAY_NOON)
    assert refused.value.reason is RefusalReason.NOT_ALLOWED


def test_a_failing_sql_server_force_is_recorded_with_its_reason(
    repository: Repository, fake_target: FakeTarget
) -> None:
    from tests.unit.remediation.test_sqlserver import _state

    def reads(plans: str) -> ForcingStateReader:
        """Query Store read live: the recorded plans of query 7 (planmon's own forces not foreign)."""
        return lambda context, ours: _state(plans, planmon_forced=ours)

    seeded = seed_regression(repository, engine="sqlserver")
    force = sqlserver.force_plan(
        RemediationStore(repository).regression_context(seeded.regression_id), _state("free"), 11
    )
    remediation_id = _approved(seeded, force, reads("free"))
    _apply(seeded, remediation_id, fake_target, WEDNESDAY_NOON, reads("free"))
    assert fake_target.sent[-1] == (
        "EXEC sys.sp_query_store_force_plan @query_id = %s, @plan_id = %s",
        (7, 11),
    )
    held = _workflow(repository, reader=reads("forced_by_planmon")).check_applied(remediation_id)
    assert held.state is State.APPLIED
    failing = _workflow(repository, reader=reads("force_failing")).check_applied(remediation_id)
    assert failing.state is State.FAILED
    row = RemediationStore(repository).get(remediation_id)
    assert row["state"] == "failed"
    assert row["outcome_reason"] == "plan 11: forcing fails: NO_INDEX (force_failure_count 3)"


def test_two_runs_proposing_at_once_store_one_proposal(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database keeps one open proposal per regression and action, even when two runs both saw
    none (the race the check-then-insert alone cannot close)."""
    seeded = seed_regression(repository)
    first = _propose(seeded)
    store = RemediationStore(repository)
    looked = []

    def nothing_open_yet(regression_id: int, action: str) -> dict[str, Any] | None:
        looked.append((regression_id, action))
        if len(looked) == 1:
            return None  # the second run looked before the first one's insert became visible
        return RemediationStore._open_proposal(store, regression_id, action)

    monkeypatch.setattr(store, "_open_proposal", nothing_open_yet)
    row, created = store.create(
        store.regression_context(seeded.regression_id), RECREATE, actor="test", dag_run_id="r2"
    )
    assert (int(row["id"]), created) == (first, False)
    assert [r["id"] for r in store.remediations()] == [first]


def test_a_final_remediation_does_not_block_the_next_proposal(repository: Repository) -> None:
    seeded = seed_regression(repository)
    rejected = _propose(seeded)
    _workflow(repository).record_decision(rejected, approved=False, responded_by="dba_bob")
    assert _propose(seeded) != rejected  # a new proposal for the same regression and action
