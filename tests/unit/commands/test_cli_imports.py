"""Commands import only what they use (issue 17): building the parser, ``planmon --help`` and
``planmon plan inspect`` of one file load no pandas, SQLAlchemy, Alembic, Airflow or store, each checked
in a fresh interpreter (this test process has long imported them all)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

HEAVY = (
    "pandas", "numpy", "sqlalchemy", "alembic", "airflow", "pydantic", "planmon.store", "planmon.airflow",
)  # fmt: skip
PLAN = PROJECT_ROOT / "tests" / "fixtures" / "plans" / "sqlserver" / "KeyLookup.sqlplan"

# Runs the CLI in-process in a fresh interpreter, then prints the loaded heavy modules as JSON on the
# last line (after whatever the command printed).
PROBE = """
import contextlib, io, json, sys
from planmon import cli
argv = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = cli.main(argv) if argv is not None else (cli.build_parser(), 0)[1]
    except SystemExit as exc:
        code = exc.code
heavy = json.loads(sys.argv[2])
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({"code": code, "out": out.getvalue(), "loaded": loaded}))
"""


def _loaded_by(argv: list[str] | None) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PROJECT_ROOT,
    )
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "argv",
    [None, ["--help"], ["plan", "inspect", str(PLAN)], ["plan", "inspect", "--json", str(PLAN)]],
    ids=["build_parser", "help", "plan-inspect", "plan-inspect-json"],
)
def test_light_commands_import_nothing_heavy(argv: list[str] | None) -> None:
    result = _loaded_by(argv)
    assert result["code"] == 0, result
    if argv is not None:
        assert result["out"], "the command printed nothing"
    assert result["loaded"] == [], f"{argv} imported {result['loaded']}"


def test_the_probe_sees_heavy_imports() -> None:
    """The check above can fail: a command that reads the settings loads pydantic."""
    result = _loaded_by(["config", "show", "--json"])
    assert result["code"] == 0, result
    assert "pydantic" in result["loaded"]
