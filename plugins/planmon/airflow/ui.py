"""Airflow's side of planmon's UI: the real login dependency, pending approvals, the login URL.

``planmon.ui`` builds the app and imports no Airflow; this module gives it Airflow's ``get_user``
(the dependency behind ``GetUserDep``: a JWT in the ``Authorization`` header or the UI's ``_token``
cookie, else 401/403), Airflow's ``[api] base_url`` (an origin allowed to post), and reads
human-in-the-loop requests from Airflow's metadata database.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from planmon.errors import scrub_secrets
from planmon.ui.app import Approvals, airflow_links, create_ui_app

log = logging.getLogger(__name__)


DAG_PREFIX = "planmon_"  # only planmon's own approvals: other DAGs' requests are not planmon's to show


def pending_approvals(limit: int) -> Approvals:
    """planmon's human-in-the-loop requests without a response, oldest first, with links to answer."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    statement = (
        select(
            HITLDetail.subject,
            HITLDetail.created_at,
            TaskInstance.dag_id,
            TaskInstance.run_id,
            TaskInstance.task_id,
            TaskInstance.map_index,
        )
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(HITLDetail.responded_at.is_(None), TaskInstance.dag_id.startswith(DAG_PREFIX, autoescape=True))
        .order_by(HITLDetail.created_at)
        .limit(limit)
    )
    try:
        with create_session() as session:
            rows = session.execute(statement).all()
    except SQLAlchemyError as exc:
        message = scrub_secrets(str(getattr(exc, "orig", None) or exc)).strip().splitlines()[0]
        log.warning("pending approvals could not be read: %s", message)
        return Approvals(available=False, message=f"Airflow's metadata database could not be read: {message}")
    return Approvals(items=[_approval(row) for row in rows])


def _approval(row: Any) -> dict[str, Any]:
    links = airflow_links(row.dag_id, row.run_id, row.task_id)
    action = links["required_action"] or "/required_actions"
    if row.map_index is not None and row.map_index >= 0:
        action += f"?map_index={row.map_index}"
    return {
        "subject": row.subject,
        "created_at": row.created_at,
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index if row.map_index is not None else -1,
        "dag_run_link": links["dag_run"],
        "required_action_link": action,
    }


def login_url() -> str:
    """The auth manager's login page (the simple auth manager's, FAB's, ...)."""
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return str(get_auth_manager().get_url_login())
    except Exception:  # no auth manager initialised (e.g. outside the API server): Airflow's default
        return "/auth/login"


def airflow_base_urls() -> list[str]:
    """Airflow's public address (``[api] base_url``), whose origin may post to planmon's pages."""
    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback="")
    return [base_url] if base_url else []


def build_app() -> FastAPI:
    """The app the plugin mounts at ``/planmon``: every route requires the Airflow login."""
    from airflow.api_fastapi.core_api.security import get_user

    from planmon.airflow.connections import open_repository

    return create_ui_app(
        user_dependency=get_user,
        repository_factory=open_repository,
        approvals=pending_approvals,
        login_url=login_url,
        base_urls=airflow_base_urls,
    )
