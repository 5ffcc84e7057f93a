"""Alert messages: what changed, evidence, impact, links; literals never reach a message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from planmon.alerting.messages import (
    AlertMessage,
    RunLinks,
    TargetInfo,
    build_digest_message,
    build_regression_message,
    diff_summary,
)
from tests.unit.alerting.seed import PLAN_DIFF

TARGET = TargetInfo(name="orders-prod", engine="postgres", environment="prod", tags={"team": "payments"})


def _row(**values: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "query_id": 3,
        "kind": "plan_change",
        "severity": "high",
        "metric": "cpu_us",
        "baseline_mean": 1200.0,
        "current_mean": 3900.0,
        "ratio": 3.25,
        "impact": 42.5,
        "p_value": 0.0001,
        "evidence": {"baseline_executions": 120, "current_executions": 340},
        "first_detected": datetime(2026, 11, 20, 12, 0),
        "last_detected": datetime(2026, 11, 20, 13, 0),
        **values,
    }


def test_message_says_what_changed_evidence_impact_and_links() -> None:
    message = build_regression_message(
        _row(),
        TARGET,
        diff_text=diff_summary(PLAN_DIFF),
        findings=["missing_index", "spill"],
        baseline_findings=["missing_index"],
        query_key="q-4711",
        query_text="SELECT sum(total) FROM orders WHERE customer_id = 4711 AND note = 'secret note'",
        links=RunLinks(
            base_url="https://airflow.example.org/", dag_id="planmon_alert", run_id="manual__2026+x"
        ),
    )
    text = message.text
    assert message.dedup_key == "regression:7:high"
    assert message.title == "[HIGH] plan change on orders-prod: query q-4711 CPU x3.2"
    assert "Index Seek (ix_customer) became Clustered Index Scan" in text
    assert text.count("became Clustered Index Scan") == 1
    assert "statement 0: shape ab12cd -> ef34gh" in text
    assert "new: spill" in text
    assert "CPU per execution 1.20 ms -> 3.90 ms, x3.25, p=0.0001" in text
    assert "baseline executions 120" in text
    assert "+42.5 CPU seconds per hour" in text
    assert "https://airflow.example.org/planmon/regressions/7" in text
    assert "https://airflow.example.org/dags/planmon_alert/runs/manual__2026%2Bx" in text
    for literal in ("4711 AND", "bob@x.org", "secret note", "= 4711"):
        assert literal not in text.replace("q-4711", "")
    assert "team=payments" in text


def test_no_links_without_base_url_and_round_trip_through_payload() -> None:
    message = build_regression_message(_row(kind="same_plan"), TARGET, diff_text=None, reason="escalated")
    assert message.links == ()
    assert "(escalated)" in message.title
    assert "the plan shape is unchanged" in message.text
    assert AlertMessage.from_dict(message.as_dict()) == message


def test_missing_numbers_do_not_break_the_message() -> None:
    row = _row(ratio=None, impact=float("nan"), baseline_mean=None, p_value=None, evidence={})
    text = build_regression_message(row, TargetInfo(name="t"), diff_text=None).text
    assert "Impact: not measured" in text
    assert "? ->" in text


def test_diff_summary_accepts_stored_shapes_and_limits_lines() -> None:
    assert diff_summary(None) is None
    assert diff_summary("Seek on t1 where a = 5") == "Seek on t1 where a = ?"
    assert diff_summary([{"changes": [{"message": "a = 1"}]}]) == "a = ?"
    many = {"changes": [{"message": f"change {i} on col_{i}"} for i in range(30)]}
    summary = diff_summary(many, max_lines=5)
    assert summary is not None
    assert summary.splitlines()[-1] == "... and 25 more change(s)"


def test_digest_counts_and_ranks_by_impact() -> None:
    rows = [
        (_row(id=1, severity="low", impact=1.0), TARGET, "q-1"),
        (_row(id=2, severity="critical", kind="same_plan", impact=99.0), TARGET, "q-2"),
    ]
    message = build_digest_message("2026-11-20", rows, links=RunLinks(base_url="https://a.example"))
    assert message.dedup_key == "digest:2026-11-20"
    assert message.severity == "critical"
    assert "2 open regression(s): 1 low, 1 critical" in message.text
    lines = message.text.splitlines()
    first = next(i for i, line in enumerate(lines) if "q-2" in line)
    assert first < next(i for i, line in enumerate(lines) if "q-1" in line)
    assert "https://a.example/planmon/regressions/2" in message.text
