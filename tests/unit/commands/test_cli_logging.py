"""``planmon.cli.logs_to_stderr``: once set up, Airflow's import and its loggers write to stderr and
stdout keeps only what the command prints (the live check of every ``--json`` command is
tests/integration/test_cli_json_live.py). A fresh interpreter each time: Airflow configures logging
once per process, at its first import."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

SCRIPT = """
import logging, sys
from planmon import cli
if sys.argv[1] == "routed":
    cli.logs_to_stderr(verbose=False)
import airflow  # configures Airflow's logging (stdlib handler and structlog)
import structlog
structlog.get_logger("airflow.probe").warning("structlog-line")
logging.getLogger("planmon.probe").warning("stdlib-line")
print("the-output")
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True, text=True, timeout=120, env=env, cwd=PROJECT_ROOT, check=True,
    )  # fmt: skip


def test_logs_go_to_stderr_and_stdout_keeps_the_output() -> None:
    completed = _run("routed")
    assert completed.stdout == "the-output\n"
    assert "structlog-line" in completed.stderr and "stdlib-line" in completed.stderr


def test_without_it_airflow_logs_onto_stdout() -> None:
    """What the set-up fixes (and proof that the test above can fail)."""
    completed = _run("plain")
    assert "structlog-line" in completed.stdout
