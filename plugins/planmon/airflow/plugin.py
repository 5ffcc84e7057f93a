"""planmon's Airflow plugin, registered through the ``airflow.plugins`` entry point.

It is how Airflow finds planmon's UI and notifiers without scanning ``plugins/`` (which
``plugins/.airflowignore`` keeps Airflow out of, because planmon is a package, not loose modules).
The UI is a FastAPI app mounted at ``/planmon`` (docs/ui.md) with an entry in Airflow's navigation;
building it reads no settings and opens no database (that happens at the first request).

Every Airflow process loads the plugin, every task process included, but only the API server mounts
the app: it is built when ``fastapi_apps`` is first read, because building it imports Airflow's API
server and planmon's UI (seconds per task on a Celery worker, which starts each task afresh).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/planmon"


@cache
def ui_apps() -> list[dict[str, Any]]:
    """The FastAPI apps the plugin mounts: planmon's UI (one instance per process)."""
    from planmon.airflow.ui import build_app

    return [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "planmon"}]


class _BuiltWhenRead:
    """A class attribute whose value :func:`ui_apps` builds on first access."""

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        return ui_apps()


class PlanmonPlugin(AirflowPlugin):
    name = "planmon"
    fastapi_apps = _BuiltWhenRead()
    external_views = [  # noqa: RUF012
        {
            "name": "planmon",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "planmon",
        }
    ]
