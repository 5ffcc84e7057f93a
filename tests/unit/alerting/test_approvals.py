"""Approval messages over a real repository: what they say, where they go (the policy's approval
channels, else alert routing), dedup per channel, failed deliveries recorded for retry, and the
reminder sent once, only while the remediation still waits, between its time and the timeout."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, update

from planmon.alerting.approvals import ApprovalEvent, ApprovalFacts, build_approval_message
from planmon.alerting.messages import TargetInfo
from planmon.store import Repository
from planmon.store.alerts import AlertStore
from planmon.store.schema import remediation
from tests.unit.alerting.seed import T0, insert_regression, seed_target
from tests.unit.alerting.test_dispatch import Clock, FailingChannel, Recorder, _dispatcher, _routing

SQL = "CREATE INDEX CONCURRENTLY orders_customer ON public.orders USING btree (customer);"
LINK = (
    "https://airflow.example.org/dags/planmon_remediate/runs/r1/tasks/approval/required_actions?map_index=-1"
)


def _remediation(repository: Repository) -> tuple[int, int]:
    target_id, queries, plans = seed_target(repository)
    regression_id = insert_regression(repository, target_id, queries["q-4711"], plans=plans)
    row = {
        "regression_id": regression_id,
        "target_id": target_id,
        "query_id": queries["q-4711"],
        "action": "recreate_index",
        "state": "proposed",
        "sql_text": SQL,
        "evidence": {},
        "created_at": T0,
        "updated_at": T0,
    }
    with repository.engine.begin() as connection:
        remediation_id = int(connection.execute(insert(remediation).values(**row)).inserted_primary_key[0])
    return remediation_id, regression_id


def _facts(remediation_id: int, regression_id: int, *, channels: tuple[str, ...] = ()) -> ApprovalFacts:
    return ApprovalFacts(
        remediation_id=remediation_id,
        regression_id=regression_id,
        run_id="r1",
        target=TargetInfo("orders-prod", "postgres", "prod", {"team": "payments"}),
        severity="high",
        action="recreate_index",
        sql=SQL,
        regression_line="plan_change on orders-prod, severity high: cpu_us mean 1200 -> 3900 (x3.25)",
        body="## recreate_index on `orders-prod`\n\n### Predicted effect\n\n- no prediction",
        approval_url=LINK,
        regression_url=f"https://airflow.example.org/planmon/regressions/{regression_id}",
        channels=channels,
        waiting_since=T0,
        timeout_at=T0 + timedelta(hours=24),
        reminder_at=T0 + timedelta(hours=12),
        assigned_users=("dba_alice",),
    )


def test_waiting_message_says_what_runs_and_links_to_the_task() -> None:
    message = build_approval_message(_facts(3, 7), ApprovalEvent.WAITING)
    assert message.dedup_key == "approval:3:r1:waiting" and message.kind == "approval"
    assert message.title == "planmon: Approval waiting: recreate_index on orders-prod (regression 7)"
    assert message.lines[:4] == (
        "Regression: plan_change on orders-prod, severity high: cpu_us mean 1200 -> 3900 (x3.25)",
        "Action: recreate_index",
        "SQL:",
        SQL,
    )
    assert "Who may answer: dba_alice. No answer by 2026-11-21" in message.lines[4]
    assert message.lines[-1].startswith("## recreate_index")  # the approval body, as Airflow shows it
    assert dict(message.links) == {
        "Required Actions": LINK,
        "planmon regression": "https://airflow.example.org/planmon/regressions/7",
    }
    assert f"Required Actions: {LINK}" in message.text


def test_answers_and_the_timeout_say_who_and_that_nothing_ran() -> None:
    approved = build_approval_message(_facts(3, 7), ApprovalEvent.APPROVED, responded_by="dba_alice")
    rejected = build_approval_message(_facts(3, 7), ApprovalEvent.REJECTED, responded_by="dba_bob")
    timeout = build_approval_message(_facts(3, 7), ApprovalEvent.TIMEOUT)
    assert approved.title.startswith("planmon: Approved by dba_alice: recreate_index")
    assert rejected.title.startswith(
        "planmon: Rejected by dba_bob: recreate_index on orders-prod, nothing ran"
    )
    assert timeout.title.startswith("planmon: Approval timed out, nothing ran")
    assert any("nothing ran on the target" in line for line in timeout.lines)
    assert len({approved.dedup_key, rejected.dedup_key, timeout.dedup_key}) == 3


def test_policy_channels_win_over_routing_and_each_channel_hears_once(
    repository: Repository, tmp_path: Path
) -> None:
    remediation_id, regression_id = _remediation(repository)
    desk, log = Recorder("hook"), Recorder("log")
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"hook": desk, "log": log}, Clock(T0))
    message = build_approval_message(
        _facts(remediation_id, regression_id, channels=("hook",)), ApprovalEvent.WAITING
    )
    first = dispatcher.send_approval_message(message)
    again = dispatcher.send_approval_message(message)
    assert (first.sent, again.sent, again.skipped["dedup"]) == (1, 0, 1)
    assert [m.dedup_key for m in desk.sent] == [message.dedup_key] and log.sent == []
    routed = build_approval_message(
        _facts(remediation_id, regression_id), ApprovalEvent.APPROVED, responded_by="a"
    )
    dispatcher.send_approval_message(routed)
    assert [m.dedup_key for m in log.sent] == [routed.dedup_key]  # no policy channels: routed like alerts


def test_a_failed_delivery_is_recorded_and_retried_by_the_alert_dispatch(
    repository: Repository, tmp_path: Path
) -> None:
    remediation_id, regression_id = _remediation(repository)
    failing = FailingChannel("hook")
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"hook": failing, "log": Recorder()}, Clock(T0))
    message = build_approval_message(
        _facts(remediation_id, regression_id, channels=("hook",)), ApprovalEvent.WAITING
    )
    assert dispatcher.send_approval_message(message).failed == 1
    [row] = [r for r in AlertStore(repository).all_alerts() if r.dedup_key == message.dedup_key]
    assert (row.status, row.attempts) == ("failed", 1) and "hunter2" not in (row.last_error or "")
    dispatcher.dispatch()  # planmon_alert's run retries it like any alert
    [row] = [r for r in AlertStore(repository).all_alerts() if r.dedup_key == message.dedup_key]
    assert (row.status, row.attempts, failing.calls) == ("failed", 2, 2)


def _set_state(repository: Repository, remediation_id: int, state: str) -> None:
    with repository.engine.begin() as connection:
        connection.execute(update(remediation).where(remediation.c.id == remediation_id).values(state=state))


def test_reminder_once_between_its_time_and_the_timeout_while_still_waiting(
    repository: Repository, tmp_path: Path
) -> None:
    remediation_id, regression_id = _remediation(repository)
    desk = Recorder("hook")
    clock = Clock(T0)
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"hook": desk, "log": Recorder()}, clock)
    dispatcher.send_approval_message(
        build_approval_message(
            _facts(remediation_id, regression_id, channels=("hook",)), ApprovalEvent.WAITING
        )
    )
    clock.now = T0 + timedelta(hours=11, minutes=59)
    assert dispatcher.remind_approvals().skipped["not_due"] == 1
    clock.now = T0 + timedelta(hours=12)
    assert dispatcher.remind_approvals().sent == 1
    assert dispatcher.remind_approvals().skipped["dedup"] == 1
    reminder = desk.sent[-1]
    assert reminder.dedup_key == f"approval:{remediation_id}:r1:reminder"
    assert reminder.title.startswith("planmon: Reminder, approval still waiting: recreate_index")
    assert reminder.links == desk.sent[0].links and reminder.lines == desk.sent[0].lines
    assert len(desk.sent) == 2


def test_no_reminder_once_answered_or_timed_out(repository: Repository, tmp_path: Path) -> None:
    remediation_id, regression_id = _remediation(repository)
    desk = Recorder("hook")
    clock = Clock(T0)
    dispatcher = _dispatcher(repository, _routing(tmp_path), {"hook": desk, "log": Recorder()}, clock)
    dispatcher.send_approval_message(
        build_approval_message(
            _facts(remediation_id, regression_id, channels=("hook",)), ApprovalEvent.WAITING
        )
    )
    clock.now = T0 + timedelta(hours=24)
    assert dispatcher.remind_approvals().skipped["timed_out"] == 1
    clock.now = T0 + timedelta(hours=13)
    _set_state(repository, remediation_id, "approved")
    assert dispatcher.remind_approvals().skipped["answered"] == 1
    assert len(desk.sent) == 1


def test_stored_times_round_trip_as_naive_utc() -> None:
    from datetime import UTC

    from planmon.alerting.dispatch import _moment

    message = build_approval_message(_facts(3, 7), ApprovalEvent.WAITING)
    assert message.details["reminder_at"] == datetime(2026, 11, 21, 0, 0).isoformat()
    assert _moment(message.details["reminder_at"]) == datetime(2026, 11, 21, 0, 0)
    aware = datetime(2026, 11, 21, 1, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert _moment(aware) == datetime(2026, 11, 21, 1, 0)
    assert _moment("not a time") is None and _moment(None) is None
