"""The UI app on a fresh repository (SQLite and the harness's PostgreSQL), with a stand-in for
Airflow's login dependency that behaves like ``GetUserDep``: a bearer token or the ``_token`` cookie,
else 401. The real dependency is exercised in tests/dags/test_ui_plugin.py and the browser test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from planmon.config import Settings
from planmon.store import Repository
from planmon.ui.app import Approvals, ApprovalsReader, create_ui_app
from tests.harness.ui_seed import SeededFleet, seed_fleet
from tests.unit.store.conftest import backend_url

TOKEN = "good-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fake_login(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header == f"Bearer {TOKEN}" or request.cookies.get("_token") == TOKEN:
        return "alice"
    raise HTTPException(status_code=401, detail="Not authenticated")


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def ui_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = backend_url(request.param, request, tmp_path)
    return Settings(repository_url=url.render_as_string(hide_password=False), home=tmp_path)


@pytest.fixture
def repository(ui_settings: Settings) -> Iterator[Repository]:
    repository = Repository.from_settings(ui_settings)
    repository.init_schema()
    try:
        yield repository
    finally:
        repository.close()


def make_client(
    settings: Settings | Callable[[], Settings], approvals: ApprovalsReader | None = None
) -> TestClient:
    """The app with the stand-in login; ``settings`` or a function reading them at the first request."""
    app = create_ui_app(
        user_dependency=fake_login,
        settings_factory=settings if callable(settings) else lambda: settings,
        approvals=approvals or (lambda _limit: Approvals()),
        login_url=lambda: "/auth/login",
    )
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(repository: Repository, ui_settings: Settings) -> TestClient:
    return make_client(ui_settings)


@pytest.fixture
def fleet(repository: Repository, ui_settings: Settings) -> SeededFleet:
    return seed_fleet(repository, ui_settings)
