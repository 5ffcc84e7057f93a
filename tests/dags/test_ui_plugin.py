"""planmon's UI inside Airflow's own API app (in-process): the plugin is found through the entry
point, mounted at /planmon, listed in the navigation, and Airflow's real login guards it: no token
is 401 (pages redirect to the auth manager's login page), a JWT from ``POST /auth/token`` (header or
the UI's ``_token`` cookie) is let in, a forged one is refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from planmon.config import Settings
from planmon.store import Repository
from tests.harness.ui_seed import SeededFleet, seed_fleet

pytestmark = pytest.mark.airflow
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@pytest.fixture(scope="module")
def airflow_api(
    airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, SeededFleet]]:
    home = tmp_path_factory.mktemp("ui-plugin")
    settings = Settings(repository_url=f"sqlite:///{home / 'planmon.db'}", home=home)
    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        fleet = seed_fleet(repository, settings)
    patch = pytest.MonkeyPatch()
    patch.setenv("PLANMON_REPOSITORY_URL", str(settings.repository_url))
    patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(home / "passwords.json"))
    patch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", raising=False)
    (home / "passwords.json").write_text(json.dumps({"admin": "planmon-test-password"}))
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    try:
        yield create_app("core"), fleet
    finally:
        purge_cached_app()
        patch.undo()


@pytest.fixture
def client(airflow_api: tuple[Any, SeededFleet]) -> TestClient:
    return TestClient(airflow_api[0], follow_redirects=False)


def _token(client: TestClient) -> str:
    response = client.post("/auth/token", json={"username": "admin", "password": "planmon-test-password"})
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


def test_plugin_is_registered_with_app_and_navigation_entry(airflow_db: None) -> None:
    from airflow import plugins_manager

    apps, _middlewares = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "planmon"] == ["/planmon"]
    external_views, _react_apps = plugins_manager._get_ui_plugins()
    [view] = [v for v in external_views if v["name"] == "planmon"]
    assert (view["href"], view["destination"]) == ("/planmon/", "nav")
    assert plugins_manager.get_import_errors() == {}


@pytest.mark.parametrize(
    "path", ["/planmon/api/overview", "/planmon/api/regressions", "/planmon/api/plans/1"]
)
def test_api_refuses_requests_without_a_valid_login(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    forged = client.get(path, headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code in (401, 403)


def test_pages_redirect_to_the_auth_managers_login(client: TestClient) -> None:
    response = client.get("/planmon/regressions?status=open")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?next=")
    assert "%2Fplanmon%2Fregressions" in response.headers["location"]


def test_a_token_from_auth_token_opens_api_and_pages(
    client: TestClient, airflow_api: tuple[Any, SeededFleet]
) -> None:
    fleet = airflow_api[1]
    token = _token(client)
    overview = client.get("/planmon/api/overview", headers={"Authorization": f"Bearer {token}"})
    assert overview.status_code == 200
    assert [t["name"] for t in overview.json()["targets"]["items"]] == ["billing", "catalog", "shop"]
    assert overview.json()["approvals"] == {"items": [], "available": True, "message": None}
    client.cookies.set("_token", token)
    page = client.get(f"/planmon/regressions/{fleet.regression_id}")
    # two plans around the regression, in both charts
    assert page.status_code == 200 and page.text.count('<g class="series" data-plan-id=') == 4
    assert 'href="/planmon/plans/' in page.text  # links carry the mount prefix


def _answer_the_approval(client: TestClient, headers: dict[str, str], seen: dict[str, Any]) -> None:
    """Wait until planmon lists the approval, note what it shows, then approve it through Airflow's
    REST API (dag.test() runs in the main thread and waits for that answer)."""
    deadline = time.monotonic() + 120
    items: list[dict[str, Any]] = []
    while not items and time.monotonic() < deadline:
        time.sleep(0.5)
        items = client.get("/planmon/api/approvals", headers=headers).json()["items"]
    seen["items"] = items
    seen["page"] = client.get("/planmon/", headers=headers).text
    run_id = quote(items[0]["run_id"], safe="") if items else "none"
    path = f"/api/v2/dags/planmon_ui_approval_check/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails"
    seen["answer"] = client.patch(
        path, json={"chosen_options": ["Approve"], "params_input": {}}, headers=headers
    )


def test_a_pending_approval_is_listed_with_its_required_action_link(
    client: TestClient, airflow_api: tuple[Any, SeededFleet]
) -> None:
    """A real approval task waiting in ``dag.test()``: the overview lists it (read from Airflow's
    HITL table) with links to the run and the required-action page, until it is answered."""
    from airflow.utils.state import DagRunState

    from tests.dags.test_dag_integrity import MINIMAL_FOLDER, load_dagbag

    dag = load_dagbag(MINIMAL_FOLDER).dags["planmon_ui_approval_check"]
    headers = {"Authorization": f"Bearer {_token(client)}"}
    seen: dict[str, Any] = {}
    answerer = threading.Thread(target=_answer_the_approval, args=(client, headers, seen), daemon=True)
    answerer.start()
    run = dag.test()
    answerer.join(timeout=60)

    assert seen["answer"].status_code == 200, seen["answer"].text
    assert run.state == DagRunState.SUCCESS
    [item] = seen["items"]
    run_path = f"/dags/planmon_ui_approval_check/runs/{quote(run.run_id, safe='')}"
    assert (item["dag_id"], item["task_id"], item["map_index"]) == (
        "planmon_ui_approval_check",
        "approval",
        -1,
    )
    assert item["subject"] == "Approve recreate_index on shop?"
    assert item["dag_run_link"] == run_path
    assert item["required_action_link"] == f"{run_path}/tasks/approval/required_actions"
    assert f'href="{run_path}/tasks/approval/required_actions"' in seen["page"]
    assert client.get("/planmon/api/approvals", headers=headers).json()["items"] == []


def test_airflows_api_base_url_is_an_origin_allowed_to_post(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a reverse proxy the browser's origin is the public address: Airflow's ``[api] base_url``
    (read through Airflow's configuration at each request) lets it post; any other origin is 403."""
    from tests.harness.ui_seed import SEQ_PLAN

    client.cookies.set("_token", _token(client))
    files = {"plan_file": ("slow.json", SEQ_PLAN, "application/json")}
    public = "https://airflow.example.com"
    refused = client.post("/planmon/plans/upload", headers={"Origin": public}, files=files)
    assert refused.status_code == 403 and "another origin (https://airflow.example.com)" in refused.text
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"{public}/")
    allowed = client.post("/planmon/plans/upload", headers={"Origin": public}, files=files)
    assert allowed.status_code == 200 and "Plan file slow.json" in allowed.text
    assert allowed.headers["content-security-policy"].endswith("frame-ancestors 'self'; base-uri 'none'")
