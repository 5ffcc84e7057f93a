"""planmon's plugin: loading it (every Airflow process does, each task process included) imports
neither Airflow's API server nor planmon's UI; the API server still gets the UI app at /planmon."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

HEAVY = ("airflow.api_fastapi.app", "airflow.api_fastapi.core_api.security", "planmon.ui.app", "pandas")


def test_loading_the_plugin_imports_neither_the_api_server_nor_the_ui() -> None:
    script = (
        "import json, sys, airflow.plugins_manager\n"
        "from planmon.airflow.plugin import PlanmonPlugin\n"
        "PlanmonPlugin(); PlanmonPlugin.name; PlanmonPlugin.external_views\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.airflow
def test_the_api_server_reads_one_ui_app_mounted_at_planmon() -> None:
    from fastapi import FastAPI

    from planmon.airflow.plugin import PlanmonPlugin

    plugin = PlanmonPlugin()
    apps = plugin.fastapi_apps
    assert [(a["url_prefix"], a["name"]) for a in apps] == [("/planmon", "planmon")]
    assert isinstance(apps[0]["app"], FastAPI)
    assert PlanmonPlugin.fastapi_apps[0]["app"] is apps[0]["app"]  # built once per process
