"""planmon's pages in headless Chromium, served by a real ``airflow api-server`` on 127.0.0.1.

The browser logs in the way Airflow's UI does (the ``_token`` session cookie holding a JWT from the
simple auth manager's ``POST /auth/token``), opens the overview, a regression and a plan, checks the
DOM (the timeline has one series per plan), that the Content-Security-Policy blocked nothing, and
that links inside Airflow's frame stay planmon's or leave the frame; it saves full-page screenshots
under ``.artifacts/ui/`` (git-ignored) for a person to look at. The same server is sent a 1 GiB
upload (with a Content-Length, and chunked) and cross-origin posts on a plain socket. Chromium is
installed with apt-get when missing; if it cannot be, the test fails saying so (it never skips).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from planmon.config import Settings
from planmon.store import Repository
from planmon.ui.app import MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD
from planmon.ui.guard import CONTENT_SECURITY_POLICY
from tests.conftest import PROJECT_ROOT
from tests.harness.airflow_server import AirflowServer, airflow_api_server
from tests.harness.browser import Browser, ChromiumUnavailable, ensure_chromium
from tests.harness.raw_http import post_streamed
from tests.harness.ui_seed import SEQ_PLAN, SeededFleet, seed_fleet

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.timeout(900)]
ARTIFACTS = PROJECT_ROOT / ".artifacts" / "ui"
GIB = 1024**3
BODY_LIMIT = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
BOUNDARY = "planmone2e"
REFUSAL_LOG = (  # planmon.ui's log lines, {path} filled in
    r"refused POST {path}: (?:Content-Length (?P<declared>\d+) over \d+ bytes, (?P<nothing>nothing read)"
    r"|(?:body|plan document) over \d+ bytes, stopped after reading (?P<read>\d+))"
)


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
    _assert_styled_and_nothing_blocked(browser)
    browser.screenshot(ARTIFACTS / "overview.png")

    browser.open(f"{server.base_url}/planmon/regressions")
    assert browser.evaluate("document.querySelectorAll('#regressions tr[data-regression-id]').length") == 1
    browser.screenshot(ARTIFACTS / "regressions.png")

    browser.open(f"{server.base_url}/planmon/regressions/{fleet.regression_id}")
    # around the regression: the index plan's baseline hours and the sequential scan
    _assert_timeline(browser, sorted(fleet.plan_ids[k] for k in ("p-index", "p-seq")))
    assert "Seq Scan" in browser.evaluate("document.querySelector('#diff [data-side=current]').textContent")
    swatches = browser.evaluate(
        "[...document.querySelectorAll('#legend svg.swatch rect')].map(r => r.getBBox().width)"
    )
    assert swatches == [14, 14]  # the legend's colours, drawn without a style attribute
    _assert_styled_and_nothing_blocked(browser)
    browser.screenshot(ARTIFACTS / "regression.png")
    # the page's link to the whole baseline window, followed as a person would
    browser.open(browser.evaluate("document.querySelector('#span a').href"))
    assert browser.evaluate("document.querySelector('#span').dataset.span") == "full"
    _assert_timeline(browser, sorted(fleet.plan_ids.values()))
    browser.screenshot(ARTIFACTS / "regression-full-baseline.png")

    browser.open(f"{server.base_url}/planmon/plans/{fleet.plan_ids['p-seq']}")
    assert browser.evaluate("document.querySelectorAll('table.tree tr.has-finding').length") == 1
    indents = browser.evaluate(
        "[...document.querySelectorAll('table.tree td.op')].map(td => td.firstChild.getBoundingClientRect"
        " ? Math.round(td.firstChild.getBoundingClientRect().width) : 0)"
    )
    assert indents == [0, 16]  # the tree's indentation, drawn without a style attribute
    _assert_styled_and_nothing_blocked(browser)
    browser.screenshot(ARTIFACTS / "plan.png")


def _assert_styled_and_nothing_blocked(browser: Browser) -> None:
    """The stylesheet applied (a static file, as the policy allows) and no policy violation."""
    assert browser.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor") == (
        "rgb(1, 124, 238)"
    )
    loaded = browser.evaluate("performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")
    assert {"/planmon/static/planmon.css", "/planmon/static/planmon.js"} <= set(loaded)
    assert browser.csp_violations() == []


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
        "[...document.querySelectorAll('table.tree td.op')]"
        ".map(td => [...td.childNodes].find(n => n.nodeType === Node.TEXT_NODE).textContent.trim())"
    )
    assert operators == ["Aggregate", "Seq Scan"]
    _assert_styled_and_nothing_blocked(browser)
    browser.screenshot(ARTIFACTS / "upload.png")


FRAME = "iframe[title=planmon]"


def _in_frame(browser: Browser, expression: str) -> object:
    return browser.evaluate(
        f"(() => {{ const frame = document.querySelector({json.dumps(FRAME)}); "
        f"if (!frame || !frame.contentDocument) return null; const doc = frame.contentDocument; "
        f"return {expression}; }})()"
    )


def _wait(condition: object, browser: Browser, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        browser.pause(0.25)
    raise AssertionError(f"{what} within {seconds} s")


def _click_in_frame(browser: Browser, selector: str) -> None:
    """A person's click on a link inside the frame (real mouse events at its position)."""
    x, y = browser.evaluate(
        f"(() => {{ const frame = document.querySelector({json.dumps(FRAME)}).getBoundingClientRect(); "
        f"const link = document.querySelector({json.dumps(FRAME)}).contentDocument"
        f".querySelector({json.dumps(selector)}).getBoundingClientRect(); "
        "return [frame.left + link.left + link.width / 2, frame.top + link.top + link.height / 2]; })()"
    )
    browser.click_at(x, y)


def test_links_inside_airflows_frame_stay_in_planmon_or_leave_the_frame(
    served: tuple[AirflowServer, SeededFleet], browser: Browser
) -> None:
    """Browse -> planmon frames the pages in a sandbox without top-level navigation: planmon's own
    links stay planmon pages in the frame (no second Airflow inside it), links meant for Airflow
    (target=_top) navigate the whole window, which the sandbox alone would block."""
    server, _fleet = served
    browser.set_cookie("_token", server.token(), f"{server.base_url}/")
    browser.open(f"{server.base_url}/plugin/planmon")
    _wait(
        lambda: _in_frame(browser, "!!doc.querySelector('header a.brand')"),
        browser,
        "Airflow's UI did not frame planmon's overview",
    )
    assert _in_frame(browser, "doc.location.pathname") == "/planmon/"
    assert (
        browser.evaluate(
            f"document.querySelector({json.dumps(FRAME)}).sandbox.contains('allow-top-navigation')"
        )
        is False
    )
    assert browser.csp_violations(frame=FRAME) == []

    _click_in_frame(browser, "header a[href='/planmon/regressions']")
    _wait(
        lambda: _in_frame(browser, "!!doc.querySelector('#regressions')"),
        browser,
        "the frame did not show planmon's regression list",
    )
    assert _in_frame(browser, "doc.location.pathname") == "/planmon/regressions"
    assert _in_frame(browser, "doc.title") == "Regressions · planmon"
    # no Airflow app inside the frame: neither its React root nor a frame of its own
    assert _in_frame(browser, "[!!doc.querySelector('#root'), doc.querySelectorAll('iframe').length]") == [
        False,
        0,
    ]
    assert browser.evaluate("document.querySelectorAll('iframe').length") == 1
    assert (
        browser.evaluate("location.pathname") == "/plugin/planmon/planmon/regressions"
    )  # Airflow's deep link
    assert browser.csp_violations(frame=FRAME) == []
    browser.screenshot(ARTIFACTS / "airflow-nav.png")

    _click_in_frame(browser, "header a[href='/required_actions']")
    _wait(
        lambda: browser.evaluate("location.pathname") == "/required_actions",
        browser,
        "the Airflow link did not navigate the top window",
    )
    _wait(
        lambda: browser.evaluate("!!document.querySelector('#root') && !document.querySelector('iframe')"),
        browser,
        "Airflow's Required actions page did not load at top level",
    )
    browser.screenshot(ARTIFACTS / "airflow-nav-required-actions.png")


def test_a_session_ending_inside_the_frame_sends_the_whole_window_to_the_login(
    served: tuple[AirflowServer, SeededFleet], browser: Browser
) -> None:
    """No login inside the frame: planmon's page says so and links to the login page for the whole
    window, instead of a redirect loading Airflow's login page (a second Airflow) in the frame."""
    server, _fleet = served
    browser.set_cookie("_token", server.token(), f"{server.base_url}/")
    browser.open(f"{server.base_url}/plugin/planmon")
    _wait(
        lambda: _in_frame(browser, "!!doc.querySelector('header a.brand')"),
        browser,
        "Airflow's UI did not frame planmon's overview",
    )
    browser.delete_cookie("_token", f"{server.base_url}/")
    _click_in_frame(browser, "header a[href='/planmon/regressions']")
    _wait(
        lambda: _in_frame(browser, "!!doc.querySelector('#session-ended')"),
        browser,
        "the frame did not say the session ended",
    )
    assert _in_frame(browser, "[!!doc.querySelector('#root'), doc.querySelectorAll('iframe').length]") == [
        False,
        0,
    ]
    assert browser.csp_violations(frame=FRAME) == []  # its stylesheet and script load without a login
    browser.screenshot(ARTIFACTS / "airflow-nav-session-ended.png")
    _click_in_frame(browser, "#login")
    _wait(
        lambda: browser.evaluate("location.pathname") == "/auth/login",
        browser,
        "the login link did not navigate the top window",
    )
    assert "next=%2Fplanmon%2Fregressions" in browser.evaluate("location.search")


# -- the guard on the real server --------------------------------------------------------------------


def _multipart(body: bytes, filename: str = "plan.json") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="plan_file"; filename="{filename}"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", ["form", "api"])
def test_the_real_server_refuses_a_1_gib_upload_without_reading_it(
    served: tuple[AirflowServer, SeededFleet], route: str, chunked: bool
) -> None:
    """413 with the limit and what to do; the server's own log says how much it read: nothing for
    a declared length, the limit plus at most one read of the socket for a chunked body."""
    server, _fleet = served
    log = server.home / "api-server.log"
    seen = len(log.read_bytes())
    headers = {"Cookie": f"_token={server.token()}", "Origin": server.base_url}
    if route == "form":
        path, head = "/planmon/plans/upload", _multipart(b"")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
        headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    else:
        path, head = "/planmon/api/plans/parse", b'[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "'
    started = time.monotonic()
    result = post_streamed(f"{server.base_url}{path}", headers=headers, head=head, total=GIB, chunked=chunked)
    seconds = time.monotonic() - started
    assert result.status == 413, result.response[:500]
    assert b"PLANMON_MAX_PLAN_BYTES, at most 16777216 bytes" in result.response
    pattern = re.compile(REFUSAL_LOG.format(path=re.escape(path)))
    found = None
    for _ in range(40):
        found = pattern.search(log.read_bytes()[seen:].decode(errors="replace"))
        if found:
            break
        time.sleep(0.25)
    assert found is not None, "no refusal in the API server's log"
    if chunked:  # the form: the guard stops it; the API: its route reading the raw document
        read = int(found["read"])
        assert MAX_UPLOAD_BYTES < read <= BODY_LIMIT + 1024 * 1024
    else:
        assert found["nothing"] and int(found["declared"]) == GIB
        assert b"request bodies over 16842752 bytes are refused" in result.response
        read = 0
    # the client could hand the socket only what the server read plus what the kernel buffers hold
    assert result.sent_body_bytes < BODY_LIMIT + 32 * 1024 * 1024 < GIB // 20
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    measured = {"path": path, "chunked": chunked, "body": GIB, "limit": BODY_LIMIT, "server_read": read,
                "client_sent": result.sent_body_bytes, "seconds": round(seconds, 2)}  # fmt: skip
    name = f"upload-limit-{route}-{'chunked' if chunked else 'content-length'}.json"
    (ARTIFACTS / name).write_text(json.dumps(measured, indent=2))


def _request(
    server: AirflowServer, path: str, *, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.base_url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_the_real_server_refuses_cross_origin_posts_and_sends_the_security_headers(
    served: tuple[AirflowServer, SeededFleet],
) -> None:
    server, fleet = served
    token = server.token()
    session = {"Cookie": f"_token={token}"}
    form = {**session, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    body = _multipart(SEQ_PLAN)

    status, _headers, page = _request(
        server, "/planmon/plans/upload", headers={**form, "Origin": "http://evil.example"}, data=body
    )
    assert status == 403 and b"the request comes from another origin (http://evil.example)" in page
    status, _headers, page = _request(server, "/planmon/plans/upload", headers=form, data=body)
    assert status == 403 and b"neither an Origin nor a Referer header" in page
    status, _headers, page = _request(
        server, "/planmon/plans/upload", headers={**form, "Origin": server.base_url}, data=body
    )
    assert status == 200 and b"Plan file plan.json" in page
    referer = {**form, "Referer": f"{server.base_url}/planmon/plans/upload"}
    assert _request(server, "/planmon/plans/upload", headers=referer, data=body)[0] == 200

    status, _headers, answer = _request(
        server, "/planmon/api/plans/parse", headers={**session, "Origin": "http://127.0.0.1:1"}, data=SEQ_PLAN
    )
    assert status == 403 and "another origin" in json.loads(answer)["detail"]
    bearer = {"Authorization": f"Bearer {token}"}  # a script: no Origin, no Referer, its own token
    assert _request(server, "/planmon/api/plans/parse", headers=bearer, data=SEQ_PLAN)[0] == 200

    paths = [
        "/planmon/",
        "/planmon/regressions",
        f"/planmon/regressions/{fleet.regression_id}",
        f"/planmon/plans/{fleet.plan_ids['p-seq']}",
        "/planmon/plans/upload",
        "/planmon/api/overview",
        "/planmon/static/planmon.css",
        "/planmon/plans/999",
    ]
    for path in paths:
        status, headers, _body = _request(server, path, headers=session)
        assert status in (200, 404), path
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
