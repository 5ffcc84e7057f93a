"""The guard every request passes (planmon.ui.guard): bounded bodies (measured by counting what the
app pulls from the ASGI ``receive``), the same-origin check on state-changing requests, and the
security headers on every answer. The same behaviour on a real ``airflow api-server`` is tested in
tests/e2e/test_ui_browser.py."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from planmon.config import Settings
from planmon.ui.app import MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD
from planmon.ui.guard import CONTENT_SECURITY_POLICY, origin_of
from tests.harness.ui_seed import SEQ_PLAN, SeededFleet
from tests.unit.ui.conftest import AUTH, TOKEN, make_client

CHUNK = 64 * 1024
GIB = 1024**3
SAME_ORIGIN = {"Origin": "http://testserver"}
BOUNDARY = "planmonboundary"
INFINITE_COST_PLAN = (
    b'[{"Plan":{"Node Type":"Limit","Total Cost":10,"Plan Rows":1,"Plans":[{"Node Type":"Seq Scan",'
    b'"Relation Name":"t","Total Cost":1e999,"Plan Rows":1}]}}]'
)


# -- bodies -------------------------------------------------------------------------------------------


class CountingBody:
    """An ASGI ``receive`` serving ``total`` bytes in 64 KiB chunks, generated as they are asked for,
    counting what the app took."""

    def __init__(self, head: bytes, total: int) -> None:
        self._chunks = self._generate(head, total)
        self.consumed = 0

    @staticmethod
    def _generate(head: bytes, total: int) -> Iterator[bytes]:
        yield head
        sent = len(head)
        block = b"x" * CHUNK
        while sent < total:
            piece = block[: min(CHUNK, total - sent)]
            sent += len(piece)
            yield piece

    async def __call__(self) -> dict[str, Any]:
        chunk = next(self._chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}


def _call(
    app: FastAPI, path: str, headers: dict[str, str], body: CountingBody
) -> tuple[int, dict[str, str], bytes]:
    """One POST straight into the ASGI app (no test client buffering the body first)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
        "server": ("testserver", 80), "client": ("127.0.0.1", 50000),
    }  # fmt: skip
    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    asyncio.run(app(scope, body, send))  # type: ignore[arg-type]
    return answer["status"], answer["headers"], answer["body"]


def _multipart_head(filename: str = "huge.json") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="plan_file"; filename="{filename}"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode()


def _upload_headers(content_length: int | None = None) -> dict[str, str]:
    headers = {**AUTH, **SAME_ORIGIN, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    if content_length is not None:
        headers["content-length"] = str(content_length)
    return headers


def test_a_content_length_over_the_limit_is_413_before_reading_a_byte(ui_settings: Settings) -> None:
    app = make_client(ui_settings).app
    body = CountingBody(_multipart_head(), GIB)
    status, headers, page = _call(app, "/plans/upload", _upload_headers(GIB), body)
    assert status == 413 and body.consumed == 0
    text = page.decode()
    limit = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    assert f"the body is {GIB} bytes: request bodies over {limit} bytes are refused" in text
    assert f"plan files up to {MAX_UPLOAD_BYTES} bytes are accepted (PLANMON_MAX_PLAN_BYTES" in text
    assert 'id="upload-error"' in text and "<form" in text  # the form again, to pick a smaller file
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    body = CountingBody(b"", GIB)
    api_headers = {**AUTH, "content-length": str(GIB)}
    status, _headers, answer = _call(app, "/api/plans/parse", api_headers, body)
    assert status == 413 and body.consumed == 0
    assert "request bodies over" in json.loads(answer)["detail"]


@pytest.mark.parametrize("path", ["/plans/upload", "/api/plans/parse"])
def test_a_chunked_body_is_cut_off_just_past_the_limit(ui_settings: Settings, path: str) -> None:
    """A 1 GiB body without Content-Length: the app reads at most the limit, the form allowance and
    one chunk, then answers 413; Starlette's form parser never sees (or spools) the rest."""
    app = make_client(ui_settings).app
    upload = path == "/plans/upload"
    body = CountingBody(_multipart_head() if upload else b"", GIB)
    headers = _upload_headers() if upload else {**AUTH}
    status, _headers, answer = _call(app, path, headers, body)
    assert status == 413
    limit = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    assert MAX_UPLOAD_BYTES < body.consumed <= limit + CHUNK, body.consumed
    assert body.consumed < GIB / 60
    if upload:  # the guard stops the form parser
        assert f"the body passed {limit} bytes" in answer.decode()
    else:  # the route reading the raw body stops first, at the document limit itself
        assert f"the plan document is over {MAX_UPLOAD_BYTES} bytes" in json.loads(answer)["detail"]


def test_the_limit_follows_planmon_max_plan_bytes(ui_settings: Settings) -> None:
    settings = ui_settings.model_copy(update={"max_plan_bytes": 100_000})
    app = make_client(settings).app
    body = CountingBody(_multipart_head(), 10 * 1024 * 1024)
    status, _headers, answer = _call(app, "/plans/upload", _upload_headers(), body)
    assert status == 413 and body.consumed <= 100_000 + MULTIPART_OVERHEAD + CHUNK
    assert "plan files up to 100000 bytes are accepted" in answer.decode()
    # a file over the limit that fits the form allowance is still refused by the route itself
    client = make_client(settings)
    files = {"plan_file": ("big.json", b" " * 100_001, "application/json")}
    response = client.post("/plans/upload", headers={**AUTH, **SAME_ORIGIN}, files=files)
    assert response.status_code == 413 and "the plan file is over 100000 bytes" in response.text


def test_a_plan_within_the_limit_is_still_shown(client: TestClient) -> None:
    files = {"plan_file": ("slow.json", SEQ_PLAN, "application/json")}
    assert client.post("/plans/upload", headers={**AUTH, **SAME_ORIGIN}, files=files).status_code == 200
    assert client.post("/api/plans/parse", headers=AUTH, content=SEQ_PLAN).status_code == 200


# -- origins ------------------------------------------------------------------------------------------


def _upload(client: TestClient, headers: dict[str, str]) -> Any:
    files = {"plan_file": ("slow.json", SEQ_PLAN, "application/json")}
    return client.post("/plans/upload", headers=headers, files=files)


def test_a_cross_origin_form_post_is_403_with_a_message(client: TestClient) -> None:
    client.cookies.set("_token", TOKEN)  # the victim's session, sent along by the browser
    response = _upload(client, {"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "the request comes from another origin (https://evil.example)" in response.text
    assert "accepts changes only from its own pages" in response.text
    api = client.post("/api/plans/parse", headers={"Origin": "http://testserver:8081"}, content=SEQ_PLAN)
    assert api.status_code == 403 and "another origin" in api.json()["detail"]  # another port: refused
    assert _upload(client, {"Origin": "null"}).status_code == 403  # a sandboxed or privacy-stripped page


def test_referer_stands_in_for_a_missing_origin(client: TestClient) -> None:
    client.cookies.set("_token", TOKEN)
    assert _upload(client, {"Referer": "http://testserver/plans/upload"}).status_code == 200
    refused = _upload(client, {"Referer": "https://evil.example/form.html"})
    assert (
        refused.status_code == 403 and "from a page of another origin (https://evil.example)" in refused.text
    )


def test_neither_header_is_refused_for_the_session_and_allowed_for_a_bearer_token(client: TestClient) -> None:
    client.cookies.set("_token", TOKEN)
    refused = _upload(client, {})
    assert refused.status_code == 403 and "neither an Origin nor a Referer header" in refused.text
    client.cookies.clear()
    assert _upload(client, AUTH).status_code == 200  # a script: a foreign page cannot send this header


def test_same_origin_posts_pass_and_configured_base_urls_are_allowed(ui_settings: Settings) -> None:
    settings = ui_settings.model_copy(update={"base_url": "https://planmon.example.com/"})
    client = make_client(settings)
    client.cookies.set("_token", TOKEN)
    assert _upload(client, SAME_ORIGIN).status_code == 200
    assert _upload(client, {"Origin": "https://planmon.example.com"}).status_code == 200  # PLANMON_BASE_URL
    assert _upload(client, {"Origin": "https://other.example.com"}).status_code == 403


def test_airflows_base_url_and_a_proxys_forwarded_host_are_allowed(ui_settings: Settings) -> None:
    from planmon.ui.app import create_ui_app
    from tests.unit.ui.conftest import fake_login

    app = create_ui_app(
        user_dependency=fake_login, settings_factory=lambda: ui_settings,
        base_urls=lambda: ["https://airflow.example.com:8443/"],
    )  # fmt: skip
    client = TestClient(app, follow_redirects=False)
    client.cookies.set("_token", TOKEN)
    assert _upload(client, {"Origin": "https://airflow.example.com:8443"}).status_code == 200
    behind_proxy = {"Origin": "https://public.example.com", "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "public.example.com"}  # fmt: skip
    assert _upload(client, behind_proxy).status_code == 200
    assert _upload(client, {"Origin": "https://public.example.com"}).status_code == 403


def test_origin_of_normalises_scheme_host_and_default_ports() -> None:
    assert origin_of("HTTPS://Airflow.Example.com:443/home") == "https://airflow.example.com"
    assert origin_of("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert origin_of("http://[::1]:8080/x") == "http://[::1]:8080"
    assert origin_of("null") is None and origin_of("") is None and origin_of("ftp://x") is None


# -- headers ------------------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(
    client: TestClient, fleet: SeededFleet, tmp_path: Path
) -> None:
    """Pages, API, static files, errors, the login redirect and refusals alike."""
    client.cookies.set("_token", TOKEN)
    answers = [
        client.get(path)
        for path in ("/", "/regressions", f"/regressions/{fleet.regression_id}", "/plans/upload",
                     f"/plans/{fleet.plan_ids['p-seq']}", "/api/overview", "/api/regressions/999",
                     "/plans/999", "/static/planmon.css", "/static/planmon.js", "/api/overview?limit=0")
    ]  # fmt: skip
    client.cookies.clear()
    answers += [client.get("/regressions"), client.post("/api/plans/parse", content=b"x")]
    assert sorted({a.status_code for a in answers}) == [200, 303, 403, 404, 422]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
    assert (
        "frame-ancestors 'self'" in CONTENT_SECURITY_POLICY
        and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    )


def test_pages_have_no_inline_script_or_style(client: TestClient, fleet: SeededFleet) -> None:
    """What the policy forbids: a ``<style>``, a ``style=`` attribute, an inline ``<script>`` or an
    event-handler attribute would be blocked by the browser (the browser test checks it does not)."""
    client.cookies.set("_token", TOKEN)
    for path in ("/", "/regressions", f"/regressions/{fleet.regression_id}", "/plans/upload",
                 f"/plans/{fleet.plan_ids['p-seq']}", "/plans/999"):  # fmt: skip
        page = client.get(path).text
        assert "<style" not in page and " style=" not in page, path
        assert re.findall(r"<script[^>]*>", page) == [
            f'<script src="/static/planmon.js?v={_version(page)}" defer>'
        ], path
        assert not re.search(r"\son[a-z]+=", page), path
        assert f'<link rel="stylesheet" href="/static/planmon.css?v={_version(page)}">' in page


def _version(page: str) -> str:
    found = re.search(r"planmon\.css\?v=([0-9a-f]{12})", page)
    assert found, "no versioned stylesheet link"
    return found.group(1)


def test_static_files_are_the_one_thing_served_without_the_login(client: TestClient) -> None:
    """A framed page whose session ended needs planmon.js to send the user to the login page."""
    css = client.get("/static/planmon.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "table.auto" in css.text
    script = client.get("/static/planmon.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "_top" in script.text
    assert script.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/other.js").status_code == 404


def test_a_framed_page_without_login_links_to_the_login_for_the_whole_window(client: TestClient) -> None:
    """Inside Browse -> planmon a redirect would show Airflow's login page inside the frame."""
    framed = client.get("/regressions?status=open", headers={"Sec-Fetch-Dest": "iframe"})
    assert framed.status_code == 401
    login = re.search(r'<a id="login" href="([^"]+)" target="_top">', framed.text)
    assert login and login.group(1) == "/auth/login?next=%2Fregressions%3Fstatus%3Dopen"
    assert "Your Airflow session has ended" in framed.text
    assert framed.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    # a top-level page (or a browser that does not say) is still redirected
    assert client.get("/regressions", headers={"Sec-Fetch-Dest": "document"}).status_code == 303
    assert client.get("/api/overview", headers={"Sec-Fetch-Dest": "iframe"}).status_code == 401


# -- infinite costs -------------------------------------------------------------------------------------


def test_an_infinite_cost_renders_and_the_api_answers_valid_json(client: TestClient) -> None:
    files = {"plan_file": ("inf.json", INFINITE_COST_PLAN, "application/json")}
    page = client.post("/plans/upload", headers={**AUTH, **SAME_ORIGIN}, files=files)
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-node-id="(\d)".*?<td class="num">(.*?)</td>', page.text, re.S))
    assert rows["1"] == '∞ <span class="hint">share n/a</span>'
    assert rows["0"].startswith('10 <svg class="costbar" width="60"') and rows["0"].endswith("100%")
    assert "nan" not in "".join(rows.values()) and "inf" not in "".join(rows.values())
    assert "runs ~" not in page.text  # no "runs ~0% of it": a fraction of infinity is not known

    answer = client.post("/api/plans/parse", headers=AUTH, content=INFINITE_COST_PLAN)
    assert answer.status_code == 200

    def refuse(constant: str) -> float:
        raise AssertionError(f"{constant} is not JSON")

    body = json.loads(answer.text, parse_constant=refuse)
    limit, scan = body["statements"][0]["nodes"]
    assert (limit["estimated_cost"], limit["cost_share"]) == (10.0, 1.0)
    assert (scan["estimated_cost"], scan["cost_share"], scan["run_fraction"]) == (None, None, None)


def test_the_number_filter_names_infinity_and_nan() -> None:
    from planmon.ui.app import _number

    assert (_number(math.inf), _number(-math.inf), _number(math.nan)) == ("∞", "−∞", "n/a")
    assert (_number(None), _number(1234.5), _number(0.5)) == ("–", "1,234", "0.5")


# -- links --------------------------------------------------------------------------------------------


def test_every_link_out_of_planmon_leaves_airflows_frame(ui_settings: Settings, fleet: SeededFleet) -> None:
    """Mounted at /planmon as Airflow mounts it: a link to anything outside /planmon (Airflow's
    pages: Required actions, a DAG run, an approval task) has target=_top, which planmon.js carries
    out inside Browse -> planmon; planmon's own links have no target and stay in the frame."""
    from planmon.ui.app import Approvals, airflow_links, create_ui_app
    from tests.unit.ui.conftest import fake_login

    item = {
        "subject": "Approve recreate_index on shop?", "created_at": "2026-11-17T07:00:00",
        "dag_id": "planmon_remediate", "run_id": "manual__1", "task_id": "approval", "map_index": -1,
        "dag_run_link": "/dags/planmon_remediate/runs/manual__1",
        "required_action_link": "/dags/planmon_remediate/runs/manual__1/tasks/approval/required_actions",
    }  # fmt: skip
    airflow = FastAPI()
    airflow.mount("/planmon", create_ui_app(
        user_dependency=fake_login, settings_factory=lambda: ui_settings,
        approvals=lambda _limit: Approvals(items=[item]),
    ))  # fmt: skip
    client = TestClient(airflow)
    client.cookies.set("_token", TOKEN)
    outside: set[str] = set()
    for path in ("/planmon/", "/planmon/regressions", f"/planmon/regressions/{fleet.regression_id}",
                 f"/planmon/plans/{fleet.plan_ids['p-seq']}", "/planmon/plans/upload"):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200, path
        for tag in re.findall(r"<a [^>]*>", page.text):
            href = re.search(r'href="([^"]*)"', tag)
            assert href, tag
            own = href.group(1).startswith(("/planmon/", "?"))
            assert ('target="_top"' in tag) is not own, (path, tag)
            if not own:
                outside.add(href.group(1))
    remediation = airflow_links("planmon_remediate", "manual__2026-11-17T07:00:00+00:00", "approval")
    assert outside == {
        "/", "/required_actions", item["dag_run_link"], item["required_action_link"],
        remediation["dag_run"], remediation["required_action"],
    }  # fmt: skip
