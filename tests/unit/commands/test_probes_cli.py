"""`planmon probes list|add|remove` on an embedded SQLite repository and a temporary probe directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planmon.cli import main

GOOD = """\
probes:
  - name: backlog
    sql: SELECT count(*) FROM orders
    operator: ">"
    critical: 10
  - name: shared
    sql: SELECT 2
    critical: 1
  - name: lag
    kind: performance
    sql: {postgres: "SELECT 1"}
    operator: ">="
    warning: 5
    critical: 50
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLANMON_HOME", str(tmp_path))
    monkeypatch.setenv("PLANMON_PROBES_DIR", str(tmp_path / "probes"))
    assert main(["init"]) == 0
    return tmp_path


def listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert main(["probes", "list", "--json"]) == 0
    return {item["name"]: item for item in json.loads(capsys.readouterr().out)}


def test_add_list_remove(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = home / "mine.yaml"
    source.write_text(GOOD, encoding="utf-8")
    assert main(["probes", "add", str(source)]) == 0
    assert "added 3 probe(s)" in capsys.readouterr().out
    assert (home / "probes" / "mine.yaml").read_text(encoding="utf-8") == GOOD

    probes = listed(capsys)
    assert {"backlog", "lag", "builtin.connectivity"} <= set(probes)
    assert probes["lag"]["definition"]["warning"] == 5  # type: ignore[index]
    assert probes["backlog"]["enabled"] is True

    assert main(["probes", "list"]) == 0
    table = capsys.readouterr().out
    assert "backlog" in table and "critical > 10" in table and "mine.yaml" in table

    assert main(["probes", "remove", "backlog"]) == 0
    assert "the file was rewritten" in capsys.readouterr().out
    rewritten = (home / "probes" / "mine.yaml").read_text(encoding="utf-8")
    assert "backlog" not in rewritten
    assert "name: lag\n" in rewritten and "postgres: SELECT 1" in rewritten and "warning: 5" in rewritten
    probes = listed(capsys)
    assert probes["backlog"]["enabled"] is False  # kept in the store, disabled: its results stay
    assert probes["lag"]["enabled"] is True
    assert "name: shared\n  sql: SELECT 2\n" in rewritten  # one text for every engine stays one text
    assert main(["probes", "remove", "lag"]) == 0
    assert main(["probes", "remove", "shared"]) == 0
    assert not (home / "probes" / "mine.yaml").exists()


def test_add_refuses_bad_files_naming_file_and_field(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.yaml"
    bad.write_text("probes:\n  - name: x\n    sql: SELECT 1\n    operator: '=>'\n    critical: 1\n")
    assert main(["probes", "add", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: probes[0] (x).operator" in err
    assert not (home / "probes" / "bad.yaml").exists()

    writes = home / "writes.yaml"
    writes.write_text("probes:\n  - name: wipe\n    sql: DELETE FROM orders\n    critical: 1\n")
    assert main(["probes", "add", str(writes)]) == 1
    assert "wipe (postgres): refused: the SQL is a DELETE statement" in capsys.readouterr().err


def test_add_refuses_duplicate_names_and_builtins_cannot_be_removed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = home / "a.yaml"
    first.write_text(GOOD)
    assert main(["probes", "add", str(first)]) == 0
    second = home / "b.yaml"
    second.write_text(GOOD)
    assert main(["probes", "add", str(second)]) == 1
    assert "already defined: backlog" in capsys.readouterr().err
    assert main(["probes", "remove", "builtin.connectivity"]) == 1
    assert "is a built-in probe" in capsys.readouterr().err


def test_a_broken_file_in_the_directory_fails_list_with_file_and_field(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "probes").mkdir()
    (home / "probes" / "broken.yaml").write_text(
        "probes:\n  - name: x\n    sql: SELECT 1\n    critical: high\n"
    )
    assert main(["probes", "list"]) == 1
    assert "broken.yaml: probes[0] (x).critical" in capsys.readouterr().err
