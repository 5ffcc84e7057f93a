"""planmon's pages in headless Chromium, served by a real ``airflow api-server`` on 127.0.0.1.

The browser logs in the way Airflow's UI does (the ``_token`` session cookie holding a JWT from the
simple auth manager's ``POST /auth/token``), opens the overview, a regression and a plan, checks the
DOM (the timeline has one series per plan) and saves full-page screenshots under
``.artifacts/ui/`` (git-ignored) for a person to look at. Chromium is installed with apt-get when
missing; if it cannot be, the test fails saying so (it never skips).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planmon.config import Settings
from planmon.store import Repository
from tests.conftest import PROJECT_ROOT
from tests.harness.airflow_server import AirflowServer, airflow_api_server
from tests.harness.browser import Browser, ChromiumUnavailable, ensure_chromium
from tests.harness.ui_seed import SEQ_PLAN, SeededFleet, seed_fleet

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.timeout(900)]
ARTIFACTS = PROJECT_ROOT / ".artifacts" / "ui"


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return ensure_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(f"the browser test needs Debian's chromium: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowServer, SeededFleet]]:
    home = tmp_path_factory.mktemp("e2e-airflow")
    settings = Settings(repository_url=f"sqlite:///{home / 'planmon.db'}", home=home)
    with Repository.from_settings(settings) as repository:
        repository.init_schema()
        fleet = seed_fleet(repository, settings)
    with airflow_api_server(home / "airflow", str(settings.repository_url)) as server:
        yield server, fleet


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    with Browser(chromium, tmp_path / "profile") as opened:
        yield opened


def test_the_real_server_refuses_planmon_without_login(served: tuple[AirflowServer, SeededFleet]) -> None:
    server, _fleet = served
    assert server.status("/planmon/api/overview") == 401
    assert server.status("/planmon/api/overview", token=server.token()) == 200


def test_a_browser_without_the_session_lands_on_the_login_page(
    served: tuple[AirflowServer, SeededFleet], browser: Browser
) -> None:
    server, _fleet = served
    landed = browser.open(f"{server.base_url}/planmon/")
    assert "/auth/login" in landed and "next=" in landed
    assert browser.evaluate("document.querySelector('#targets')") is None
    browser.screenshot(ARTIFACTS / "login-redirect.png")


def test_overview_regression_and_plan_pages_in_the_browser(
    served: tuple[AirflowServer, SeededFleet], browser: Browser
) -> None:
    server, fleet = served
    browser.set_cookie("_token", server.token(), f"{server.base_url}/")

    landed = browser.open(f"{server.base_url}/planmon/")
    assert landed == f"{server.base_url}/planmon/"
    targets = browser.evaluate(
        "[...document.querySelectorAll('#targets tr[data-target]')].map(r => r.dataset.target)"
    )
    assert targets == ["billing", "catalog", "shop"]
    assert browser.evaluate("document.querySelector('#open-regressions .big').textContent.trim()") == "1"
    browser.screenshot(ARTIFACTS / "overview.png")

    browser.open(f"{server.base_url}/planmon/regressions")
    assert browser.evaluate("document.querySelectorAll('#regressions tr[data-regression-id]').length") == 1
    browser.screenshot(ARTIFACTS / "regressions.png")

    browser.open(f"{server.base_url}/planmon/regressions/{fleet.regression_id}")
    # around the regression: the index plan's baseline hours and the sequential scan
    _assert_timeline(browser, sorted(fleet.plan_ids[k] for k in ("p-index", "p-seq")))
    assert "Seq Scan" in browser.evaluate("document.querySelector('#diff [data-side=current]').textContent")
    browser.screenshot(ARTIFACTS / "regression.png")
    # the page's link to the whole baseline window, followed as a person would
    browser.open(browser.evaluate("document.querySelector('#span a').href"))
    assert browser.evaluate("document.querySelector('#span').dataset.span") == "full"
    _assert_timeline(browser, sorted(fleet.plan_ids.values()))
    browser.screenshot(ARTIFACTS / "regression-full-baseline.png")

    browser.open(f"{server.base_url}/planmon/plans/{fleet.plan_ids['p-seq']}")
    assert browser.evaluate("document.querySelectorAll('table.tree tr.has-finding').length") == 1
    browser.screenshot(ARTIFACTS / "plan.png")


def _assert_timeline(browser: Browser, plan_ids: list[int]) -> None:
    for chart in ("#chart-cpu", "#chart-duration"):
        series = browser.evaluate(
            f"[...document.querySelectorAll('{chart} svg g.series[data-plan-id]')]"
            ".map(g => Number(g.dataset.planId))"
        )
        assert sorted(series) == plan_ids, chart  # one series per plan
        drawn = browser.evaluate(f"document.querySelector('{chart} svg').getBoundingClientRect().height")
        assert drawn > 100  # rendered, not collapsed
        windows = browser.evaluate(
            f"[...document.querySelectorAll('{chart} rect[data-window]')].map(r => r.dataset.window)"
        )
        assert windows == ["baseline", "regressed"]
    legend = browser.evaluate("document.querySelectorAll('#legend li[data-plan-id]').length")
    assert legend == len(plan_ids)


def test_a_plan_file_uploaded_in_the_browser_is_shown(
    served: tuple[AirflowServer, SeededFleet], browser: Browser, tmp_path: Path
) -> None:
    server, _fleet = served
    browser.set_cookie("_token", server.token(), f"{server.base_url}/")
    plan_file = tmp_path / "slow-orders.json"
    plan_file.write_bytes(SEQ_PLAN)
    browser.open(f"{server.base_url}/planmon/plans/upload")
    browser.choose_file("input[type=file]", plan_file)
    landed = browser.submit("form")
    assert landed == f"{server.base_url}/planmon/plans/upload"
    assert browser.evaluate("document.querySelector('h1').textContent") == "Plan file slow-orders.json"
    operators = browser.evaluate(
        "[...document.querySelectorAll('table.tree td.op')].map(td => td.firstChild.textContent.trim())"
    )
    assert operators == ["Aggregate", "Seq Scan"]
    browser.screenshot(ARTIFACTS / "upload.png")


def test_the_navigation_entry_opens_planmon_inside_airflows_ui(
    served: tuple[AirflowServer, SeededFleet], browser: Browser
) -> None:
    server, _fleet = served
    browser.set_cookie("_token", server.token(), f"{server.base_url}/")
    browser.open(f"{server.base_url}/plugin/planmon")
    frame_src = None
    for _ in range(30):  # Airflow's UI is a React app: wait for it to render the iframe
        frame_src = browser.evaluate(
            "document.querySelector('iframe') && document.querySelector('iframe').src"
        )
        if frame_src:
            break
        browser.pause(0.5)
    assert frame_src is not None and frame_src.endswith("/planmon/")
    browser.pause(2)  # the framed page loads after the frame appears
    browser.screenshot(ARTIFACTS / "airflow-nav.png")
