"""`planmon regressions`: info regressions are listed, and --severity filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planmon.cli import main
from planmon.commands._common import open_repository
from planmon.commands.analyze import SEVERITY_NAMES
from planmon.model import SEVERITIES
from planmon.store.regressions import RegressionStore
from tests.harness.seeds import HOUR, SLOW, seed


def test_the_cli_knows_every_severity() -> None:
    assert tuple(SEVERITY_NAMES) == tuple(str(s) for s in SEVERITIES)


def test_info_is_listed_and_severity_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    assert main(["init"]) == 0
    with open_repository() as repository:
        target_id, plan_ids = seed(repository, slow_hours=2)
        base = {
            "target_id": target_id, "kind": "plan_change", "metric": "cpu_us",
            "baseline_plan_id": plan_ids["p1"], "current_plan_id": plan_ids["p2"], "baseline_mean": 1.0,
            "current_mean": 3.0, "ratio": 3.0, "p_value": 1e-9, "evidence": {}, "diff": None,
        }  # fmt: skip
        query_id = int(repository.plans_frame([target_id])["query_id"].iloc[0])
        RegressionStore(repository).record_regressions(
            [{**base, "query_id": query_id, "severity": "info", "impact": 2.0},
             {**base, "query_id": query_id, "kind": "same_plan", "severity": "high", "impact": 900.0}],
            detected_at=SLOW + HOUR,
        )  # fmt: skip
    capsys.readouterr()
    assert main(["regressions", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["regressions"]
    assert sorted(r["severity"] for r in listed) == ["high", "info"]
    assert main(["regressions", "--json", "--severity", "info"]) == 0
    assert [r["severity"] for r in json.loads(capsys.readouterr().out)["regressions"]] == ["info"]
