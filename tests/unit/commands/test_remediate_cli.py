"""`planmon remediate propose / list / apply / policy` on an embedded repository: proposals print
their id, apply refuses without an approval and says how to get one, the ledger is listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planmon.cli import main
from planmon.config import load_settings
from planmon.remediation.workflow import RemediationWorkflow
from planmon.store import Repository
from tests.unit.remediation.conftest import seed_with_plans


@pytest.fixture
def seeded_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A repository with one regression whose baseline plan used an index that is gone."""
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    with Repository.from_settings(load_settings()) as repository:
        repository.init_schema()
        return seed_with_plans(repository).regression_id


def test_propose_prints_the_proposal_with_its_id(
    seeded_home: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["remediate", "propose", str(seeded_home), "--json"]) == 0
    proposal = json.loads(capsys.readouterr().out)
    assert proposal["id"] == 1 and proposal["action"] == "recreate_index" and proposal["state"] == "proposed"
    assert proposal["sql"].startswith("CREATE INDEX CONCURRENTLY orders_customer")
    assert "### Rollback" in proposal["body"] and proposal["needs_approval"] is True
    assert main(["remediate", "propose", str(seeded_home)]) == 0  # proposing again shows the open one
    assert "proposal 1 (already open): recreate_index" in capsys.readouterr().out


def test_apply_without_approval_refuses_and_says_how(
    seeded_home: int, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["remediate", "propose", str(seeded_home), "--json"])
    capsys.readouterr()
    assert main(["remediate", "apply", "1"]) == 3
    err = capsys.readouterr().err
    assert "no recorded approval" in err and "Required Actions" in err
    assert f'{{"regression_id": {seeded_home}}}' in err


def test_list_shows_the_ledger(seeded_home: int, capsys: pytest.CaptureFixture[str]) -> None:
    main(["remediate", "propose", str(seeded_home), "--json"])
    with Repository.from_settings(load_settings()) as repository:
        RemediationWorkflow(repository, load_settings()).record_decision(
            1, approved=False, responded_by="dba_bob"
        )
    capsys.readouterr()
    assert main(["remediate", "list", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["remediations"]
    assert (entry["state"], entry["outcome_reason"], entry["target"]) == (
        "rejected",
        "rejected by dba_bob",
        "shop",
    )
    assert main(["remediate", "list"]) == 0
    assert "rejected by dba_bob" in capsys.readouterr().out


def test_policy_sets_mode_and_rails(seeded_home: int, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "remediate",
        "policy",
        "shop",
        "--mode",
        "auto",
        "--allow",
        "analyze",
        "--window",
        "sat,sun@01:00-05:00",
        "--approver",
        "dba_alice",
        "--max-per-hour",
        "1",
        "--approval-channel",
        "dba-slack",
        "--json",
    ]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mode"] == "auto" and shown["policy"]["allowed_actions"] == ["analyze"]
    assert shown["policy"]["approval_channels"] == ["dba-slack"]
    assert shown["policy"]["maintenance_windows"] == [
        {"start": "01:00", "end": "05:00", "days": ["sat", "sun"]}
    ]
    assert main(["remediate", "policy", "shop", "--window", "someday@1-2"]) == 1
    assert "invalid remediation policy" in capsys.readouterr().err
