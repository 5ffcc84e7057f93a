"""The UI's JSON API and pages through FastAPI's test client: login required everywhere, shapes,
pagination, empty states, bad ids, plan upload."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from planmon.config import Settings
from planmon.store import Repository
from planmon.store.collection import CollectionStore
from planmon.ui import charts
from planmon.ui.app import Approvals
from tests.harness.ui_seed import SEQ_PLAN, SeededFleet
from tests.unit.ui.conftest import AUTH, TOKEN, make_client

GET_ROUTES = [
    "/api/overview", "/api/targets", "/api/approvals", "/api/regressions", "/api/regressions/1",
    "/api/regressions/1/timeline", "/api/plans/1", "/api/openapi.json",
]  # fmt: skip
PAGES = ["/", "/regressions", "/regressions/1", "/plans/1", "/plans/upload"]
SVG = "{http://www.w3.org/2000/svg}"


def test_every_route_of_the_app_requires_the_login(client: TestClient) -> None:
    """Every route the app has, not just the listed ones: a new route without the login fails here."""
    checked = 0
    for route in client.app.routes:  # type: ignore[attr-defined]
        for method in getattr(route, "methods", ()):
            path = route.path.replace("{regression_id}", "1").replace("{plan_id}", "1")
            same_origin = {"Origin": "http://testserver"}  # past the guard's origin check, to the login
            response = client.request(method, path, headers=same_origin)
            assert response.status_code in (401, 303), (method, path, response.status_code)
            checked += 1
    assert checked >= 14  # the routes listed in docs/ui.md, GET and HEAD
    # the one mount (no login: the static CSS and script, test_guard.py) and nothing else unguarded
    assert [r.path for r in client.app.routes if not hasattr(r, "methods")] == ["/static"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_api_without_login_is_401_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert client.get(path, headers={"Authorization": "Bearer forged"}).status_code == 401


@pytest.mark.parametrize("path", PAGES)
def test_pages_without_login_redirect_to_the_login_page(client: TestClient, path: str) -> None:
    response = client.get(path + "?offset=0")
    assert response.status_code == 303
    assert response.headers["location"] == f"/auth/login?next={path.replace('/', '%2F')}%3Foffset%3D0"


def test_the_session_cookie_is_accepted_like_airflows_ui(client: TestClient) -> None:
    client.cookies.set("_token", TOKEN)
    assert client.get("/api/overview").status_code == 200
    assert client.get("/").status_code == 200


def test_empty_repository_renders_empty_states(client: TestClient) -> None:
    overview = client.get("/api/overview", headers=AUTH).json()
    assert overview["targets"] == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert overview["open_regressions"] == {"total": 0, "by_severity": {}, "by_kind": {}}
    assert overview["approvals"] == {"items": [], "available": True, "message": None}
    assert client.get("/api/regressions", headers=AUTH).json()["items"] == []
    page = client.get("/", headers=AUTH).text
    assert "No targets registered yet" in page and "No open regressions." in page
    assert "No approvals pending." in page
    assert "No regressions match." in client.get("/regressions", headers=AUTH).text


def test_approvals_that_cannot_be_read_say_why(repository: Repository, ui_settings: Settings) -> None:
    client = make_client(ui_settings, lambda _limit: Approvals(available=False, message="metadata DB down"))
    assert client.get("/api/approvals", headers=AUTH).json() == {
        "items": [], "available": False, "message": "metadata DB down"
    }  # fmt: skip
    assert "Approvals cannot be shown: metadata DB down" in client.get("/", headers=AUTH).text


def test_pending_approvals_link_to_the_required_action_page(
    repository: Repository, ui_settings: Settings
) -> None:
    item = {
        "subject": "Approve recreate_index on shop?", "created_at": "2026-11-17T07:00:00",
        "dag_id": "planmon_remediate", "run_id": "manual__1", "task_id": "approval", "map_index": -1,
        "dag_run_link": "/dags/planmon_remediate/runs/manual__1",
        "required_action_link": "/dags/planmon_remediate/runs/manual__1/tasks/approval/required_actions",
    }  # fmt: skip
    client = make_client(ui_settings, lambda _limit: Approvals(items=[item]))
    page = client.get("/", headers=AUTH).text
    assert 'href="/dags/planmon_remediate/runs/manual__1/tasks/approval/required_actions"' in page
    assert "Approve recreate_index on shop?" in page


def test_overview_shows_collection_status_per_aspect_with_hint(
    client: TestClient, fleet: SeededFleet
) -> None:
    body = client.get("/api/overview", headers=AUTH).json()
    targets = {t["name"]: t for t in body["targets"]["items"]}
    assert list(targets) == ["billing", "catalog", "shop"]
    billing = targets["billing"]["last_collection"]
    assert billing["status"] == "degraded"
    assert billing["aspects"]["plans"] == {
        "status": "permission_denied",
        "hint": "GRANT VIEW DATABASE STATE TO planmon",
    }
    assert targets["catalog"]["last_collection"] is None
    assert targets["shop"]["open_regressions"] == 1
    assert body["open_regressions"] == {"total": 1, "by_severity": {"low": 1}, "by_kind": {"plan_change": 1}}
    page = client.get("/", headers=AUTH).text
    assert "GRANT VIEW DATABASE STATE TO planmon" in page and "never collected" in page


def test_targets_are_paginated(client: TestClient, fleet: SeededFleet) -> None:
    first = client.get("/api/targets?limit=2", headers=AUTH).json()
    second = client.get("/api/targets?limit=2&offset=2", headers=AUTH).json()
    assert [t["name"] for t in first["items"]] == ["billing", "catalog"]
    assert [t["name"] for t in second["items"]] == ["shop"]
    assert first["total"] == second["total"] == 3
    assert client.get("/api/targets?limit=0", headers=AUTH).status_code == 422
    assert client.get("/api/targets?limit=201", headers=AUTH).status_code == 422
    page = client.get("/?offset=0", headers=AUTH).text
    assert "1–3 of 3" in page and 'rel="next"' not in page


def test_regressions_list_filters_and_validates(client: TestClient, fleet: SeededFleet) -> None:
    body = client.get("/api/regressions", headers=AUTH).json()
    assert body["total"] == 1
    item = body["items"][0]
    assert item["id"] == fleet.regression_id and item["target"] == "shop" and item["kind"] == "plan_change"
    assert client.get("/api/regressions?status=resolved", headers=AUTH).json()["total"] == 0
    assert client.get("/api/regressions?status=all&target=shop", headers=AUTH).json()["total"] == 1
    assert client.get("/api/regressions?severity=high", headers=AUTH).json()["total"] == 0
    bad = client.get("/api/regressions?severity=urgent", headers=AUTH)
    assert bad.status_code == 400 and "severity must be one of" in bad.json()["detail"]
    assert f'href="/regressions/{fleet.regression_id}"' in client.get("/regressions", headers=AUTH).text


def test_regression_detail_has_statistics_findings_diff_and_history(
    client: TestClient, fleet: SeededFleet
) -> None:
    body = client.get(f"/api/regressions/{fleet.regression_id}", headers=AUTH).json()
    assert body["regression"]["baseline_plan_key"] == "p-index"
    assert body["regression"]["current_plan_key"] == "p-seq"
    stats = {row["name"]: row for row in body["statistics"]}
    assert stats["mean cpu_us"] == {"name": "mean cpu_us", "baseline": 10000.0, "current": 40000.0}
    assert [f["id"] for f in body["findings"]["current"]] == ["row_estimate_mismatch"]
    assert body["findings"]["baseline"] == []
    changes = [c["kind"] for c in body["diff"]["changes"]["changes"]]
    assert "access_method_changed" in changes
    operators = [n["operator"] for n in body["diff"]["current"]["statements"][0]["nodes"]]
    assert operators == ["Aggregate", "Seq Scan"]
    [remediation] = body["remediations"]
    assert remediation["links"] == {
        "dag_run": "/dags/planmon_remediate/runs/manual__2026-11-17T07%3A00%3A00%2B00%3A00",
        "required_action": "/dags/planmon_remediate/runs/manual__2026-11-17T07%3A00%3A00%2B00%3A00"
        "/tasks/approval/required_actions",
    }
    assert [a["action"] for a in body["audit"]] == ["regression.open", "remediation.propose"]


def test_timeline_has_one_series_per_plan_and_marks_windows(client: TestClient, fleet: SeededFleet) -> None:
    body = client.get(f"/api/regressions/{fleet.regression_id}/timeline?span=full", headers=AUTH).json()
    assert sorted(s["plan_key"] for s in body["series"]) == ["p-bitmap", "p-index", "p-seq"]
    seq = next(s for s in body["series"] if s["plan_key"] == "p-seq")
    assert len(seq["points"]) == 6 and {p["cpu_us_mean"] for p in seq["points"]} == {40000.0}
    assert body["regressed"] == {"start": "2026-11-17T00:00:00", "end": "2026-11-17T06:00:00"}
    assert body["baseline"] == {"start": "2026-11-10T00:00:00", "end": "2026-11-17T00:00:00"}
    assert body["chart"] == {"start": "2026-11-10T00:00:00", "end": "2026-11-18T06:00:00", "span": "full"}


def test_the_default_timeline_is_around_the_regression(client: TestClient, fleet: SeededFleet) -> None:
    """Six regressed hours: 18 hours of the baseline before them, six after, not the 8-day week."""
    body = client.get(f"/api/regressions/{fleet.regression_id}/timeline", headers=AUTH).json()
    assert body["chart"] == {"start": "2026-11-16T06:00:00", "end": "2026-11-17T12:00:00", "span": "incident"}
    assert body["regressed"] == {"start": "2026-11-17T00:00:00", "end": "2026-11-17T06:00:00"}
    assert body["baseline"] == {"start": "2026-11-10T00:00:00", "end": "2026-11-17T00:00:00"}
    points = {s["plan_key"]: [p["interval_start"] for p in s["points"]] for s in body["series"]}
    assert sorted(points) == ["p-index", "p-seq"]  # the bitmap plan ran at 03:00, before the span
    index = points["p-index"]
    assert len(index) == 21 and min(index) == "2026-11-16T06:00:00"  # 18 baseline hours, 3 after
    assert len(points["p-seq"]) == 6


def test_the_regressed_window_is_a_fifth_of_the_default_chart(client: TestClient, fleet: SeededFleet) -> None:
    widths = {}
    for span in ("incident", "full"):
        page = client.get(f"/regressions/{fleet.regression_id}?span={span}", headers=AUTH).text
        svg = ElementTree.fromstring(_chart(page, "chart-cpu").split(">", 1)[1] + "</svg>")
        rect = next(r for r in svg.iter(f"{SVG}rect") if r.get("data-window") == "regressed")
        widths[span] = float(rect.get("width", "0")) / (charts.WIDTH - charts.LEFT - charts.RIGHT)
    assert widths["incident"] == pytest.approx(0.2, abs=0.01)
    assert widths["full"] < 0.04  # the week's baseline leaves the incident a sliver
    assert 'data-span="incident"' in client.get(f"/regressions/{fleet.regression_id}", headers=AUTH).text


def _query_with_intervals(
    repository: Repository, fleet: SeededFleet, key: str, *, interval: timedelta, count: int, end: datetime
) -> int:
    """A query of the fleet's target with one plan, ``count`` intervals of ``interval`` ending at
    ``end``, and an open regression of its last interval; returns the regression's id."""
    from sqlalchemy import insert

    from planmon.model import PlanRecord, QueryRecord
    from planmon.store.schema import regression

    collection = CollectionStore(repository)
    query_id = collection.upsert_queries(fleet.target_id, [QueryRecord(key)])[("", key)]
    plan_id = collection.upsert_plans(fleet.target_id, [PlanRecord(f"{key}-plan", key)])[f"{key}-plan"]
    starts = [end - interval * (count - i) for i in range(count)]
    collection.upsert_runtime_stats([
        {"target_id": fleet.target_id, "plan_id": plan_id, "query_id": query_id, "interval_start": start,
         "interval_end": start + interval, "executions": 10, "cpu_us_mean": 100.0, "duration_us_mean": 120.0}
        for start in starts
    ])  # fmt: skip
    with repository.engine.begin() as connection:
        return int(
            connection.execute(
                insert(regression)
                .values(
                    target_id=fleet.target_id, query_id=query_id, kind="same_plan", status="open",
                    open_key="open", severity="low", metric="cpu_us", baseline_mean=100.0, current_mean=300.0,
                    evidence={"current_intervals": 1}, first_detected=end, last_detected=end,
                )
                .returning(regression.c.id)
            ).scalar_one()
        )  # fmt: skip


def test_the_span_follows_the_querys_own_interval(
    client: TestClient, repository: Repository, fleet: SeededFleet
) -> None:
    """The span is counted in the query's own intervals (its newest rows before the detection):
    daily Query Store intervals get a week of baseline, five-minute ones an hour."""
    end = datetime(2026, 11, 20)
    daily = _query_with_intervals(repository, fleet, "q-daily", interval=timedelta(days=1), count=10, end=end)
    body = client.get(f"/api/regressions/{daily}/timeline", headers=AUTH).json()
    # one regressed day; 12 intervals of lead capped at the 7-day baseline; 4 days after, up to now
    assert (
        body["chart"]["start"] == "2026-11-12T00:00:00"
        and body["regressed"]["start"] == "2026-11-19T00:00:00"
    )
    [series] = body["series"]
    assert [p["interval_start"][:10] for p in series["points"]] == [f"2026-11-{d}" for d in range(12, 20)]

    fine = _query_with_intervals(
        repository, fleet, "q-fine", interval=timedelta(minutes=5), count=300, end=end
    )
    body = client.get(f"/api/regressions/{fine}/timeline", headers=AUTH).json()
    assert body["chart"]["start"] == "2026-11-19T22:55:00"  # 12 intervals of lead before the last 5 minutes
    [series] = body["series"]
    assert len(series["points"]) == 13 and series["points"][0]["interval_start"] == "2026-11-19T22:55:00"


def test_an_unknown_span_is_400_naming_the_spans(client: TestClient, fleet: SeededFleet) -> None:
    response = client.get(f"/api/regressions/{fleet.regression_id}/timeline?span=week", headers=AUTH)
    assert response.status_code == 400 and response.json()["detail"] == "span must be one of incident, full"
    page = client.get(f"/regressions/{fleet.regression_id}?span=week", headers=AUTH)
    assert page.status_code == 400 and "span must be one of incident, full" in page.text


def test_regression_page_draws_one_series_per_plan_in_each_chart(
    client: TestClient, fleet: SeededFleet
) -> None:
    expected = {
        "incident": sorted(fleet.plan_ids[k] for k in ("p-index", "p-seq")),
        "full": sorted(fleet.plan_ids.values()),
    }
    for span, plan_ids in expected.items():
        page = client.get(f"/regressions/{fleet.regression_id}?span={span}", headers=AUTH).text
        for chart in ("chart-cpu", "chart-duration"):
            svg = _chart(page, chart)
            series = re.findall(r'<g class="series" data-plan-id="(\d+)"', svg)
            assert sorted(map(int, series)) == plan_ids
            assert 'data-window="baseline"' in svg and 'data-window="regressed"' in svg
        legend = re.findall(r'<li data-plan-id="(\d+)"', page)
        assert sorted(map(int, legend)) == plan_ids
    assert "No remediation proposed" not in page and "CREATE INDEX CONCURRENTLY" in page
    assert "public.orders: Index Scan on orders_customer -&gt; Seq Scan" in page


def _chart(page: str, chart: str) -> str:
    return page.split(f'id="{chart}"')[1].split("</svg>", maxsplit=1)[0]


def test_a_cpu_chart_without_cpu_says_the_engine_reports_none(
    client: TestClient, repository: Repository, fleet: SeededFleet
) -> None:
    """PostgreSQL's rows carry duration and no CPU: the CPU chart says so, not "no statistics"."""
    from sqlalchemy import update

    from planmon.store.schema import runtime_stats

    with repository.engine.begin() as connection:
        connection.execute(update(runtime_stats).values(cpu_us_mean=None, cpu_us_stdev=None))
    page = client.get(f"/regressions/{fleet.regression_id}", headers=AUTH).text
    cpu, duration = _chart(page, "chart-cpu"), _chart(page, "chart-duration")
    assert "this engine (postgres) reports no CPU per statement" in cpu and '<g class="series"' not in cpu
    assert "no runtime statistics" not in cpu
    assert duration.count('<g class="series"') == 2 and "reports no CPU" not in duration


def test_a_timeline_without_points_says_there_are_no_statistics(
    client: TestClient, repository: Repository, fleet: SeededFleet
) -> None:
    from sqlalchemy import delete

    from planmon.store.schema import runtime_stats

    with repository.engine.begin() as connection:
        connection.execute(delete(runtime_stats))
    page = client.get(f"/regressions/{fleet.regression_id}", headers=AUTH).text
    for chart in ("chart-cpu", "chart-duration"):
        assert "no runtime statistics in this range" in _chart(page, chart)
        assert "reports no CPU" not in _chart(page, chart)


def test_plan_view_shows_tree_costs_rows_and_findings(client: TestClient, fleet: SeededFleet) -> None:
    body = client.get(f"/api/plans/{fleet.plan_ids['p-seq']}", headers=AUTH).json()
    [statement] = body["statements"]
    scan = statement["nodes"][1]
    assert (scan["operator"], scan["depth"], scan["parent"]) == (
        "Seq Scan",
        1,
        statement["nodes"][0]["node_id"],
    )
    assert scan["estimated_rows"] == 10 and scan["actual_rows"] == 25000 and scan["row_ratio"] == 2500
    assert [f["id"] for f in scan["findings"]] == ["row_estimate_mismatch"]
    page = client.get(f"/plans/{fleet.plan_ids['p-seq']}", headers=AUTH).text
    assert 'class="has-finding"' in page and "row_estimate_mismatch" in page


BAD_IDS = ["/api/regressions/999", "/api/regressions/abc", "/api/regressions/999/timeline", "/api/plans/999",
           "/api/plans/-1"]  # fmt: skip


@pytest.mark.parametrize("path", BAD_IDS)
def test_unknown_ids_are_404_with_a_message(client: TestClient, path: str) -> None:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 404
    assert re.fullmatch(r"no (regression|plan) with id '.+'", response.json()["detail"])


@pytest.mark.parametrize("path", ["/regressions/999", "/plans/abc"])
def test_unknown_ids_on_pages_are_404_pages(client: TestClient, path: str) -> None:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 404 and "no " in response.text and "with id" in response.text


def test_uploaded_plan_file_is_parsed_with_the_plan_parser(client: TestClient) -> None:
    files = {"plan_file": ("slow.json", SEQ_PLAN, "application/json")}
    page = client.post("/plans/upload", headers=AUTH, files=files, data={"engine": ""})
    assert page.status_code == 200 and "Seq Scan" in page.text and "row_estimate_mismatch" in page.text
    body = client.post("/api/plans/parse?filename=slow.json", headers=AUTH, content=SEQ_PLAN).json()
    assert body["plan_engine"] == "postgres" and body["source"] == "slow.json"
    assert [n["operator"] for n in body["statements"][0]["nodes"]] == ["Aggregate", "Seq Scan"]


LIMIT_PLAN = (
    Path(__file__).resolve().parents[2] / "fixtures/plans/postgres/pev2__sample_plan6_pgadmin_quoted.txt"
)


def test_cost_shares_under_a_limit_stay_within_the_statement(client: TestClient) -> None:
    """A real PostgreSQL plan: Limit (cost 3878.21) over a Nested Loop costing 48075.41 run whole."""
    plan = LIMIT_PLAN.read_bytes()
    body = client.post("/api/plans/parse?filename=limit.txt", headers=AUTH, content=plan).json()
    nodes = body["statements"][0]["nodes"]
    assert [n["operator"] for n in nodes[:2]] == ["Limit", "Nested Loop"]
    assert nodes[1]["estimated_cost"] == 48075.41  # the engine's cost stays as reported
    assert nodes[1]["cost_share"] == pytest.approx(1.0) and nodes[1]["run_fraction"] == pytest.approx(
        0.0806, abs=1e-3
    )
    assert all(0.0 <= n["cost_share"] <= 1.0 for n in nodes)
    page = client.post("/plans/upload", headers=AUTH, files={"plan_file": ("limit.txt", plan, "text/plain")})
    shares = [int(v) for v in re.findall(r"</svg> (\d+)%", page.text)]
    assert len(shares) == len(nodes) and max(shares) == 100
    assert "runs ~8.1% of it" in page.text


def test_a_bad_plan_file_is_400_with_the_parsers_message(client: TestClient) -> None:
    response = client.post("/api/plans/parse", headers=AUTH, content=b"<html>not a plan</html>")
    assert response.status_code == 400 and "not a SQL Server showplan" in response.json()["detail"]
    assert client.post("/api/plans/parse", headers=AUTH, content=b"").status_code == 400
    files = {"plan_file": ("x.txt", b"hello", "text/plain")}
    page = client.post("/plans/upload", headers=AUTH, files=files)
    assert page.status_code == 400 and "Could not read the plan" in page.text


def test_a_regression_without_plans_and_a_plan_without_document_render(
    client: TestClient, repository: Repository, fleet: SeededFleet
) -> None:
    """An error_prone regression has no plans; a plan whose document was never captured has none."""
    from datetime import datetime

    from sqlalchemy import insert

    from planmon.model import PlanRecord
    from planmon.store.schema import regression

    plan_ids = CollectionStore(repository).upsert_plans(fleet.target_id, [PlanRecord("p-nodoc", "q-42")])
    bare_plan = plan_ids["p-nodoc"]
    moment = datetime(2026, 11, 17, 6)
    with repository.engine.begin() as connection:
        error_id = connection.execute(
            insert(regression)
            .values(
                target_id=fleet.target_id, query_id=fleet.query_id, kind="error_prone", status="open",
                open_key="open", severity="medium", metric="errors", baseline_mean=0.0, current_mean=0.2,
                evidence={"rule": "error rate 0.00% -> 20.00%"}, first_detected=moment, last_detected=moment,
            )
            .returning(regression.c.id)
        ).scalar_one()  # fmt: skip
    body = client.get(f"/api/regressions/{error_id}", headers=AUTH).json()
    assert body["diff"] == {"baseline": None, "current": None, "changes": None}
    assert body["findings"] == {"baseline": [], "current": []}
    page = client.get(f"/regressions/{error_id}", headers=AUTH)
    assert page.status_code == 200 and "No plan document stored." in page.text
    assert page.text.count('<g class="series"') == 4  # the query's plans around it still have a timeline
    plan_body = client.get(f"/api/plans/{bare_plan}", headers=AUTH).json()
    assert (plan_body["document"], plan_body["statements"], plan_body["plan_key"]) == (False, [], "p-nodoc")
    assert "No plan document is stored" in client.get(f"/plans/{bare_plan}", headers=AUTH).text


def test_a_repository_without_schema_is_503_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(repository_url=f"sqlite:///{tmp_path / 'never-initialised.db'}", home=tmp_path)
    client = make_client(settings)
    response = client.get("/api/regressions", headers=AUTH)
    assert response.status_code == 503
    assert "the repository at sqlite:///" in response.json()["detail"]
    assert "run `planmon init`" in response.json()["detail"]
    page = client.get("/", headers=AUTH)
    assert page.status_code == 503 and "the repository at" in page.text


def test_bad_planmon_settings_are_503_naming_the_variable(tmp_path: Path) -> None:
    from planmon.config import load_settings

    client = make_client(lambda: load_settings({"PLANMON_BASELINE_DAYS": "zero"}))
    response = client.get("/api/overview", headers=AUTH)
    assert response.status_code == 503 and "PLANMON_BASELINE_DAYS" in response.json()["detail"]


def test_a_plan_unknown_regression_says_why_and_how_to_fix_capture(
    client: TestClient, fleet: SeededFleet, repository: Repository
) -> None:
    from sqlalchemy import update

    from planmon.store.schema import regression

    evidence = {
        "rule": "duration_us mean x3.00 >= 1.5",
        "plan_unknown": True,
        "plan_unknown_reason": "no plan was ever captured for the baseline and current side",
        "hint": "capture plans for this query: see the target's plans aspect",
    }
    with repository.engine.begin() as connection:
        connection.execute(
            update(regression)
            .where(regression.c.id == fleet.regression_id)
            .values(kind="plan_unknown", evidence=evidence)
        )
    page = client.get(f"/regressions/{fleet.regression_id}", headers=AUTH).text
    row = page.split('id="plan-unknown"')[1].split("</tr>")[0]
    assert "no plan was ever captured for the baseline and current side" in row
    assert "see the target&#39;s plans aspect" in row
    assert client.get("/api/regressions?kind=plan_unknown", headers=AUTH).json()["total"] == 1
