"""``planmon plan inspect`` / ``planmon plan diff``: exit codes, text and the JSON shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planmon import cli

STATEMENT_KEYS = {
    "shape_hash",
    "engine_plan_hash",
    "estimated_cost",
    "dop",
    "operator_count",
    "missing_indexes",
    "findings",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["plan", *argv])
    return code, capsys.readouterr().out


def test_inspect_json_shape_and_exit_0(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        corpus_dir / "sqlserver" / "KeyLookup.sqlplan",
        corpus_dir / "postgres" / "pev2__sample_plan1.txt",
    ]
    code, out = _run(capsys, "inspect", "--json", *map(str, files))
    assert code == 0
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(f) for f in files]
    assert [r["engine"] for r in results] == ["sqlserver", "postgres"]
    for result in results:
        assert result["error"] is None
        assert result["statements"]
        for statement in result["statements"]:
            assert set(statement) >= STATEMENT_KEYS
            assert len(statement["shape_hash"]) == 16
            assert isinstance(statement["operator_count"], int)
            for finding in statement["findings"]:
                assert {"id", "severity", "node", "message"} <= set(finding)
    assert results[0]["statements"][0]["engine_plan_hash"] == "0xF5F0579514DDDCB2"


def test_inspect_reports_missing_indexes(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(corpus_dir / "sqlserver" / "case_predicate_plan.sqlplan")
    code, out = _run(capsys, "inspect", "--json", path)
    assert code == 0
    statement = json.loads(out)[0]["statements"][0]
    assert statement["dop"] == 8
    assert statement["missing_indexes"] == [
        {
            "table": "StackOverflow2013.dbo.Users",
            "impact": 99.9462,
            "equality_columns": ["DisplayName"],
            "inequality_columns": [],
            "include_columns": [],
        }
    ]
    code, out = _run(capsys, "inspect", path)
    assert "missing index on StackOverflow2013.dbo.Users (DisplayName) impact 99.9462%" in out


def test_inspect_failed_file_exit_2_others_still_reported(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.sqlplan"
    broken.write_text('<?xml version="1.0"?><ShowPlanXML><BatchSequence><Batch>')
    good = corpus_dir / "sqlserver" / "simple.sqlplan"
    code, out = _run(capsys, "inspect", "--json", str(broken), str(good), str(tmp_path / "absent.json"))
    assert code == 2
    results = json.loads(out)
    assert len(results) == 3
    assert results[0]["error"] and results[0]["statements"] == []
    assert results[1]["error"] is None and results[1]["statements"]
    assert "cannot read" in results[2]["error"]


def test_inspect_text(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "inspect", str(corpus_dir / "sqlserver" / "KeyLookup.sqlplan"))
    assert code == 0
    assert "shape " in out and "0xF5F0579514DDDCB2" in out
    assert "Clustered Index Seek" in out


def test_inspect_forced_engine(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(corpus_dir / "postgres" / "pev2__sample_plan1.json")
    code, out = _run(capsys, "inspect", "--json", "--engine", "postgres", path)
    assert code == 0 and json.loads(out)[0]["engine"] == "postgres"
    code, out = _run(capsys, "inspect", "--json", "--engine", "sqlserver", path)
    assert code == 2 and json.loads(out)[0]["error"]


def test_unknown_engine_is_a_usage_error(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["plan", "inspect", "--engine", "oracle", str(corpus_dir / "sqlserver" / "simple.sqlplan")]
    )
    assert code != 0
    assert "sqlserver, postgres, mysql" in capsys.readouterr().err


def test_diff_text_and_json(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = str(corpus_dir / "sqlserver" / "KeyLookup.sqlplan")
    after = str(corpus_dir / "sqlserver" / "clustered_index_scan.sqlplan")
    code, out = _run(capsys, "diff", before, after)
    assert code == 0
    assert "dbo.Users: no longer accessed" in out
    code, out = _run(capsys, "diff", "--json", before, after)
    assert code == 0
    body = json.loads(out)
    assert body["engine"] == "sqlserver" and body["error"] is None
    statement = body["statements"][0]
    assert {"statement_index", "before_hash", "after_hash", "shape_unchanged", "changes"} <= set(statement)
    assert {c["kind"] for c in statement["changes"]} >= {"object_accessed", "object_no_longer_accessed"}


def test_diff_same_plan_two_ways_is_unchanged(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = str(corpus_dir / "sqlserver" / "adaptive_join_estimated.sqlplan")
    after = str(corpus_dir / "sqlserver" / "adaptive_join.sqlplan")
    code, out = _run(capsys, "diff", "--json", before, after)
    assert code == 0
    statement = json.loads(out)["statements"][0]
    assert statement["shape_unchanged"] is True
    assert statement["changes"][0]["kind"] == "shape_unchanged"


def test_diff_unreadable_file_exit_2(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        capsys,
        "diff",
        "--json",
        str(tmp_path / "nope.sqlplan"),
        str(corpus_dir / "sqlserver" / "simple.sqlplan"),
    )
    assert code == 2
    body = json.loads(out)
    assert body["error"] and body["statements"] == []


def test_diff_across_engines_is_refused(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        capsys,
        "diff",
        str(corpus_dir / "sqlserver" / "simple.sqlplan"),
        str(corpus_dir / "postgres" / "pev2__sample_plan1.json"),
    )
    assert code == 2
    assert "cannot diff" in out


def test_inspect_json_findings(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "inspect", "--json", str(corpus_dir / "sqlserver" / "slow-multi-seek.sqlplan"))
    assert code == 0
    findings = json.loads(out)[0]["statements"][0]["findings"]
    mismatch = [f for f in findings if f["id"] == "row_estimate_mismatch"]
    assert [(f["node"], f["severity"]) for f in mismatch] == [(1, "critical")]
    order = {"critical": 0, "warning": 1, "info": 2}
    assert [order[f["severity"]] for f in findings] == sorted(order[f["severity"]] for f in findings)
