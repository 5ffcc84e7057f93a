"""planmon's UI inside Airflow's own API app (in-process): the plugin is found through the entry
point, mounted at /planmon, listed in the navigation, and Airflow's real login guards it: no token
is 401 (pages redirect to the auth manager's login page), a JWT from ``POST /auth/token`` (header or
the UI's ``_token`` cookie) is let in, a forged one is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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
    assert page.status_code == 200 and page.text.count('<g class="series" data-plan-id=') == 6
    assert 'href="/planmon/plans/' in page.text  # links carry the mount prefix
