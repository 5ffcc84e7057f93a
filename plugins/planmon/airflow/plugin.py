"""planmon's Airflow plugin, registered through the ``airflow.plugins`` entry point.

It is how Airflow finds planmon's UI and notifiers without scanning ``plugins/`` (which
``plugins/.airflowignore`` keeps Airflow out of, because planmon is a package, not loose modules).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class PlanmonPlugin(AirflowPlugin):
    name = "planmon"
