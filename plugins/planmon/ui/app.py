"""planmon's pages and JSON API as a FastAPI app, mounted by the Airflow plugin under ``/planmon``.

The app is built by :func:`create_ui_app` with what it needs injected, so it builds and is tested
without a running Airflow: the user dependency (Airflow's ``GetUserDep`` in production: every page
and API route requires the Airflow login), a repository factory, and a reader of pending approvals.
Pages are rendered on the server (Jinja2 templates, SVG charts) with one static stylesheet and one
small static script (links meant for Airflow leave Airflow's frame), nothing from a CDN and nothing
inline, so the Content-Security-Policy of :mod:`planmon.ui.guard` can forbid inline code.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from planmon.config import Settings, load_settings
from planmon.errors import ConfigError, PlanmonError, PlanParseError
from planmon.model import KINDS, SEVERITIES
from planmon.store.repository import Repository
from planmon.store.ui_queries import STATUSES, Page, RegressionFilter, Timeline, UIQueries, jsonable
from planmon.ui import charts, views
from planmon.ui.guard import BodyLimit, RequestGuard

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_FILES = ("planmon.css", "planmon.js")
PAGE_SIZE = 50
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # uploaded plan files; PLANMON_MAX_PLAN_BYTES if smaller
MULTIPART_OVERHEAD = 64 * 1024  # what a form adds around the file: boundaries, part headers, engine
UPLOAD_PAGE = "/plans/upload"
REMEDIATE_DAG_ID = "planmon_remediate"
APPROVAL_TASK_ID = "approval"  # the HITL task of planmon_remediate
SEVERITIES_WORST_FIRST = tuple(reversed(SEVERITIES))


@dataclass(frozen=True, slots=True)
class Approvals:
    """Pending human-in-the-loop requests, or why they could not be read."""

    items: list[dict[str, Any]] = field(default_factory=list)
    available: bool = True
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"items": jsonable(self.items), "available": self.available, "message": self.message}


ApprovalsReader = Callable[[int], Approvals]


def no_approvals(_limit: int) -> Approvals:
    return Approvals(available=False, message="Airflow's metadata database is not connected to this app")


def airflow_links(dag_id: str, run_id: str | None, task_id: str | None = None) -> dict[str, str | None]:
    """Links into the Airflow UI (same origin) for a DAG run and its required-action page."""
    if not run_id:
        return {"dag_run": None, "required_action": None}
    run = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    action = f"{run}/tasks/{quote(task_id, safe='')}/required_actions" if task_id else None
    return {"dag_run": run, "required_action": action}


class _Context:
    """Per-app state: settings and repository (read at first use, never at import), templates."""

    def __init__(
        self,
        settings_factory: Callable[[], Settings],
        repository_factory: Callable[[Settings], Repository],
        login_url: Callable[[], str],
        base_urls: Callable[[], Sequence[str]],
    ) -> None:
        self._settings_factory = settings_factory
        self._repository_factory = repository_factory
        self.login_url = login_url
        self._base_urls = base_urls
        self._settings: Settings | None = None
        self._repository: Repository | None = None
        self._lock = threading.Lock()
        self.templates = Environment(
            loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True)
        )
        self.templates.filters["number"] = _number
        self.templates.filters["when"] = _when
        self.templates.filters["duration"] = _duration
        self.templates.tests["finite"] = _is_finite
        self.templates.globals["static_version"] = _static_version()

    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = self._settings_factory()
            return self._settings

    @property
    def baseline_days(self) -> int:
        return self.settings().baseline_days

    @property
    def max_upload(self) -> int:
        return min(self.settings().max_plan_bytes, MAX_UPLOAD_BYTES)

    def _max_upload_or_cap(self) -> int:
        """The upload limit, or the hard cap while the settings cannot be read (the route then
        answers 503 saying why)."""
        try:
            return self.max_upload
        except PlanmonError:
            return MAX_UPLOAD_BYTES

    def body_limit(self) -> BodyLimit:
        """The largest request body read: a plan file at the limit and a form around it."""
        max_upload = self._max_upload_or_cap()
        return BodyLimit(max_upload + MULTIPART_OVERHEAD, upload_advice(max_upload))

    def allowed_origins(self) -> list[str]:
        """Base URLs whose origin may post to planmon besides the request's own: PLANMON_BASE_URL
        and Airflow's ``[api] base_url`` (what a reverse proxy's public address should be set in)."""
        try:
            configured = [self.settings().base_url]
        except PlanmonError:
            configured = []
        return [u for u in (*configured, *self._base_urls()) if u]

    def queries(self) -> UIQueries:
        settings = self.settings()
        with self._lock:
            if self._repository is None:
                self._repository = self._repository_factory(settings)
            return UIQueries(self._repository)


def create_ui_app(
    *,
    user_dependency: Callable[..., Any],
    settings_factory: Callable[[], Settings] = load_settings,
    repository_factory: Callable[[Settings], Repository] = Repository.from_settings,
    approvals: ApprovalsReader = no_approvals,
    login_url: Callable[[], str] = lambda: "/auth/login",
    base_urls: Callable[[], Sequence[str]] = tuple,
) -> FastAPI:
    """The UI app. ``user_dependency`` must raise 401/403 for a request without a valid login;
    settings and the repository are read at the first request; ``base_urls`` gives the public
    addresses (Airflow's ``[api] base_url``) whose origin may post to the app besides its own."""
    context = _Context(settings_factory, repository_factory, login_url, base_urls)
    app = FastAPI(
        title="planmon",
        description="planmon pages and JSON API (docs/ui.md)",
        dependencies=[Depends(user_dependency)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served behind the login at /api/openapi.json instead
    )
    app.add_middleware(
        RequestGuard,
        body_limit=context.body_limit,
        allowed_origins=context.allowed_origins,
        refuse=lambda request, status, message: _refusal(context, request, status, message),
    )
    _add_error_handlers(app, context)
    _add_static_routes(app)
    _add_api_routes(app, context, approvals)
    _add_detail_api_routes(app, context)
    _add_page_routes(app, context, approvals)
    return app


# -- errors -------------------------------------------------------------------------------------------


def _route_path(request: Request) -> str:
    return request.url.path.removeprefix(request.scope.get("root_path", ""))


def _is_api(request: Request) -> bool:
    return _route_path(request).startswith("/api/")


def upload_advice(max_upload: int) -> str:
    return (
        f"plan files up to {max_upload} bytes are accepted (PLANMON_MAX_PLAN_BYTES, at most "
        f"{MAX_UPLOAD_BYTES} bytes): open a smaller document, such as the plan of one statement"
    )


def _refusal(context: _Context, request: Request, status: int, message: str) -> Response:
    """A refused request as the caller reads it: JSON for the API, the upload form with the
    message for an upload, else the error page (never the login redirect: the user is not the
    problem)."""
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    if _route_path(request) == UPLOAD_PAGE:
        response = _render(context, request, "upload.html", title="Open a plan file", error=message)
        response.status_code = status
        return response
    return _error_page(context, request, status, message)


def _add_error_handlers(app: FastAPI, context: _Context) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code in (401, 403):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = f"{context.login_url()}?{urlencode({'next': target})}"
            if request.headers.get("sec-fetch-dest") == "iframe":
                return _framed_login(context, request, exc.status_code, login)
            return RedirectResponse(login, status_code=303)
        if exc.status_code == 413:
            return _refusal(context, request, 413, str(exc.detail))
        return _error_page(context, request, exc.status_code, str(exc.detail))

    @app.exception_handler(PlanmonError)
    async def planmon_error(request: Request, exc: PlanmonError) -> Response:
        """The repository unreachable or planmon misconfigured (PLANMON_* settings): 503 with why."""
        message = f"{exc} ({exc.hint})" if exc.hint else str(exc)
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=503)
        return _error_page(context, request, 503, message)


def _add_static_routes(app: FastAPI) -> None:
    """planmon's stylesheet and script, the one thing served without the login (a mount: the app's
    login dependency applies to routes): the page telling a framed user that the session ended needs
    them, and they hold nothing but planmon's published source."""
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=True), name="static")


def _static_version() -> str:
    """A hash of the static files, in their URLs so a browser never keeps a stale copy."""
    digest = hashlib.sha256()
    for name in STATIC_FILES:
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:12]


def _framed_login(context: _Context, request: Request, status: int, login: str) -> HTMLResponse:
    """A page without a valid login inside Airflow's frame (Browse -> planmon, the session ended):
    a redirect would load Airflow's login page, a second Airflow, inside the frame; this page links
    to it for the whole window instead (target=_top, carried out by planmon.js)."""
    html = context.templates.get_template("login.html").render(
        root=request.scope.get("root_path", ""), title="Log in", login=login
    )
    return HTMLResponse(html, status_code=status)


def _error_page(context: _Context, request: Request, status: int, message: str) -> HTMLResponse:
    html = context.templates.get_template("error.html").render(
        root=request.scope.get("root_path", ""), title=f"{status}", status=status, message=message
    )
    return HTMLResponse(html, status_code=status)


def _not_found(what: str, raw_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no {what} with id {raw_id!r}")


def _parse_id(what: str, raw_id: str) -> int:
    if not raw_id.isdigit():
        raise _not_found(what, raw_id)
    return int(raw_id)


def regression_filter(
    status: str | None = "open",
    severity: str | None = None,
    kind: str | None = None,
    target: str | None = None,
) -> RegressionFilter:
    """The regression list's query parameters (``status=all`` for any status); 400 for unknown values."""
    checks = (
        ("status", status, (*STATUSES, "all")),
        ("severity", severity, SEVERITIES_WORST_FIRST),
        ("kind", kind, KINDS),
    )
    for name, value, allowed in checks:
        if value and value not in allowed:
            raise HTTPException(status_code=400, detail=f"{name} must be one of {', '.join(allowed)}")
    return RegressionFilter(
        status=None if status == "all" else status, severity=severity or None, kind=kind or None,
        target=target or None,
    )  # fmt: skip


# -- data shared by the API and the pages ----------------------------------------------------------------


def overview_data(
    queries: UIQueries, approvals: ApprovalsReader, *, limit: int, offset: int
) -> dict[str, Any]:
    return {
        "targets": queries.targets_page(limit=limit, offset=offset).as_dict(),
        "open_regressions": queries.open_regression_counts(),
        "approvals": approvals(limit).as_dict(),
    }


def regression_data(queries: UIQueries, regression_id: int) -> dict[str, Any]:
    row = queries.regression(regression_id)
    if row is None:
        raise _not_found("regression", str(regression_id))
    plans = views.regression_diff(queries, row)
    remediations = queries.remediations(row["target_id"], row["query_id"])
    for item in remediations:
        item["links"] = airflow_links(REMEDIATE_DAG_ID, item.get("dag_run_id"), APPROVAL_TASK_ID)
    subjects = [f"regression:{regression_id}", *(f"remediation:{r['id']}" for r in remediations)]
    return {
        "regression": {k: v for k, v in row.items() if k != "open_key"},
        "statistics": views.statistics_rows(row),
        "findings": {side: views.plan_findings(plans[side]) for side in ("baseline", "current")},
        "diff": plans,
        "remediations": remediations,
        "variants": views.query_variants(queries, row),  # SQL Server PSP variants of the same parent
        "audit": queries.audit_entries(subjects),
    }


def timeline_data(
    queries: UIQueries, row: dict[str, Any], baseline_days: int, span: str
) -> tuple[Timeline, views.Windows]:
    """The regression's timeline over its chart's range, which follows the query's own interval."""
    now = datetime.now(UTC).replace(tzinfo=None)  # the repository's times are naive UTC
    interval = queries.query_interval(row["query_id"], row["last_detected"]) or views.DEFAULT_INTERVAL
    windows = views.regression_windows(row, baseline_days, interval, now=now, span=span)
    timeline = queries.timeline(row["query_id"], windows.chart_start, windows.chart_end)
    return timeline, windows


def timeline_span(span: str = "incident") -> str:
    """The ``span`` query parameter of a regression's timeline; 400 naming the allowed values."""
    if span not in views.SPANS:
        raise HTTPException(status_code=400, detail=f"span must be one of {', '.join(views.SPANS)}")
    return span


# -- JSON API -----------------------------------------------------------------------------------------


Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]
Selection = Annotated[RegressionFilter, Depends(regression_filter)]
Span = Annotated[str, Depends(timeline_span)]


def _add_api_routes(app: FastAPI, context: _Context, approvals: ApprovalsReader) -> None:
    @app.get("/api/openapi.json", include_in_schema=False)
    def api_schema() -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/overview")
    def api_overview(limit: Limit = PAGE_SIZE, offset: Offset = 0) -> dict[str, Any]:
        return jsonable(overview_data(context.queries(), approvals, limit=limit, offset=offset))  # type: ignore[no-any-return]

    @app.get("/api/targets")
    def api_targets(limit: Limit = PAGE_SIZE, offset: Offset = 0) -> dict[str, Any]:
        return jsonable(context.queries().targets_page(limit=limit, offset=offset).as_dict())  # type: ignore[no-any-return]

    @app.get("/api/approvals")
    def api_approvals(limit: Limit = PAGE_SIZE) -> dict[str, Any]:
        return approvals(limit).as_dict()

    @app.get("/api/regressions")
    def api_regressions(selection: Selection, limit: Limit = PAGE_SIZE, offset: Offset = 0) -> dict[str, Any]:
        page = context.queries().regressions_page(selection, limit=limit, offset=offset)
        return jsonable(page.as_dict())  # type: ignore[no-any-return]


def _add_detail_api_routes(app: FastAPI, context: _Context) -> None:
    @app.get("/api/regressions/{regression_id}")
    def api_regression(regression_id: str) -> dict[str, Any]:
        data = regression_data(context.queries(), _parse_id("regression", regression_id))
        return jsonable(data)  # type: ignore[no-any-return]

    @app.get("/api/regressions/{regression_id}/timeline")
    def api_timeline(regression_id: str, span: Span) -> dict[str, Any]:
        queries = context.queries()
        row = queries.regression(_parse_id("regression", regression_id))
        if row is None:
            raise _not_found("regression", regression_id)
        timeline, windows = timeline_data(queries, row, context.baseline_days, span)
        return views.timeline_json(timeline, windows)

    @app.get("/api/plans/{plan_id}")
    def api_plan(plan_id: str) -> dict[str, Any]:
        stored = context.queries().plan(_parse_id("plan", plan_id))
        if stored is None:
            raise _not_found("plan", plan_id)
        return views.plan_view_from_row(stored)

    @app.post("/api/plans/parse")
    async def api_parse(
        request: Request, engine: str | None = None, filename: str | None = None
    ) -> dict[str, Any]:
        data = await _read_limited(request, context.max_upload)
        return _parse_or_400(data, engine, filename)


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused (413) once it passes ``max_bytes``: the guard has already refused a
    Content-Length over its larger allowance for forms, so this is where a chunked document stops."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            log.warning(
                "refused %s %s: plan document over %d bytes, stopped after reading %d",
                request.method, request.url.path, max_bytes, size,
            )  # fmt: skip
            detail = f"the plan document is over {max_bytes} bytes: {upload_advice(max_bytes)}"
            raise HTTPException(status_code=413, detail=detail)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_or_400(data: bytes, engine: str | None, filename: str | None) -> dict[str, Any]:
    if not data.strip():
        raise HTTPException(status_code=400, detail="no plan document in the request body")
    try:
        return views.parse_upload(data, engine=engine, filename=filename)
    except (PlanParseError, ConfigError) as exc:
        message = f"{exc} ({exc.hint})" if isinstance(exc, PlanmonError) and exc.hint else str(exc)
        raise HTTPException(status_code=400, detail=message) from exc


# -- pages --------------------------------------------------------------------------------------------


def _render(context: _Context, request: Request, template: str, **values: Any) -> HTMLResponse:
    html = context.templates.get_template(template).render(root=request.scope.get("root_path", ""), **values)
    return HTMLResponse(html)


def _pager(page: Page, request: Request) -> dict[str, Any]:
    """Previous/next links keeping the other query parameters."""

    def link(offset: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "offset"}
        return "?" + urlencode({**params, "offset": offset})

    last = page.offset + len(page.items)
    return {
        "first": page.offset + 1 if page.items else 0,
        "last": last,
        "total": page.total,
        "previous": link(max(0, page.offset - page.limit)) if page.offset > 0 else None,
        "next": link(page.offset + page.limit) if last < page.total else None,
    }


def _add_page_routes(app: FastAPI, context: _Context, approvals: ApprovalsReader) -> None:
    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, offset: Offset = 0) -> HTMLResponse:
        data = overview_data(context.queries(), approvals, limit=PAGE_SIZE, offset=offset)
        page = Page(**data["targets"])
        return _render(
            context, request, "overview.html", title="planmon", data=data, pager=_pager(page, request)
        )

    @app.get("/regressions", response_class=HTMLResponse)
    def regressions_page(request: Request, selection: Selection, offset: Offset = 0) -> HTMLResponse:
        page = context.queries().regressions_page(selection, limit=PAGE_SIZE, offset=offset)
        return _render(
            context, request, "regressions.html", title="Regressions", page=page, pager=_pager(page, request),
            selection=selection, status=selection.status or "all", severities=SEVERITIES_WORST_FIRST,
            kinds=KINDS,
        )  # fmt: skip

    @app.get("/regressions/{regression_id}", response_class=HTMLResponse)
    def regression_page(request: Request, regression_id: str, span: Span) -> HTMLResponse:
        queries = context.queries()
        data = regression_data(queries, _parse_id("regression", regression_id))
        timeline, windows = timeline_data(queries, data["regression"], context.baseline_days, span)
        svg = _timeline_charts(timeline, windows, data["regression"].get("engine"))
        return _render(
            context, request, "regression.html", title=f"Regression {regression_id}", data=data,
            charts=svg, windows=windows, timeline=timeline, colours=views.plan_colours(timeline),
            label=views.plan_label, changed=views.changed_tables(data["diff"]["changes"]),
        )  # fmt: skip

    @app.get(UPLOAD_PAGE, response_class=HTMLResponse)
    def upload_form(request: Request) -> HTMLResponse:
        return _render(context, request, "upload.html", title="Open a plan file", error=None)

    @app.post(UPLOAD_PAGE, response_class=HTMLResponse)
    async def upload_plan(
        request: Request, plan_file: Annotated[UploadFile, File()], engine: Annotated[str, Form()] = ""
    ) -> HTMLResponse:
        max_upload = context.max_upload
        data = await plan_file.read(max_upload + 1)
        try:
            if len(data) > max_upload:
                detail = f"the plan file is over {max_upload} bytes: {upload_advice(max_upload)}"
                raise HTTPException(status_code=413, detail=detail)
            view = _parse_or_400(data, engine or None, plan_file.filename)
        except HTTPException as exc:
            response = _render(context, request, "upload.html", title="Open a plan file", error=exc.detail)
            response.status_code = exc.status_code
            return response
        return _render(context, request, "plan.html", title=f"Plan file {plan_file.filename}", plan=view)

    @app.get("/plans/{plan_id}", response_class=HTMLResponse)
    def plan_page(request: Request, plan_id: str) -> HTMLResponse:
        stored = context.queries().plan(_parse_id("plan", plan_id))
        if stored is None:
            raise _not_found("plan", plan_id)
        view = views.plan_view_from_row(stored)
        return _render(context, request, "plan.html", title=f"Plan {plan_id}", plan=view)


def _timeline_charts(timeline: Timeline, windows: views.Windows, engine: str | None) -> dict[str, str]:
    colours = views.plan_colours(timeline)
    marked = (windows.baseline, windows.regressed)
    return {
        metric: charts.timeline_svg(
            views.timeline_series(timeline, metric),
            windows=marked,
            title=title,
            unit="us",
            start=windows.chart_start,
            end=windows.chart_end,
            colours=colours,
            empty=views.empty_chart_message(timeline, metric, engine),
        )
        for metric, title in (
            ("cpu_us_mean", "CPU per execution"),
            ("duration_us_mean", "Duration per execution"),
        )
    }


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any, digits: int = 3) -> str:
    """A number as the pages show it: "–" when there is none, "∞" for an engine's cost that
    overflowed (PostgreSQL's EXPLAIN can say 1e999), "n/a" for one that is not a number."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)


def _duration(value: timedelta) -> str:
    """A span as a DBA reads it: minutes, hours, or days from two days on."""
    seconds = value.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:g} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:g} hours"
    return f"{seconds / 86400:g} days"
