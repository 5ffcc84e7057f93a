"""planmon's Airflow plugin, registered through the ``airflow.plugins`` entry point.

It is how Airflow finds planmon's UI and notifiers without scanning ``plugins/`` (which
``plugins/.airflowignore`` keeps Airflow out of, because planmon is a package, not loose modules).
The UI is a FastAPI app mounted at ``/planmon`` (docs/ui.md) with an entry in Airflow's navigation;
building it reads no settings and opens no database (that happens at the first request).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from planmon.airflow.ui import build_app

URL_PREFIX = "/planmon"


class PlanmonPlugin(AirflowPlugin):
    name = "planmon"
    fastapi_apps = [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "planmon"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "planmon",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "planmon",
        }
    ]
