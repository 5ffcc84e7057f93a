"""Alerting's own settings, read from ``PLANMON_ALERT_*`` environment variables when a task starts.

They live here (not in :class:`planmon.config.Settings`) because only alerting reads them; the
cooldown (``PLANMON_ALERT_COOLDOWN_MINUTES``) and ``PLANMON_BASE_URL`` stay in the shared settings.
Nothing secret is configured here: channels name Airflow connection ids for credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from planmon.config import Settings, env_name, load_settings, one_setting, valid_cron
from planmon.errors import ConfigError

ALERT_PREFIX = "PLANMON_ALERT_"


class AlertSettings(BaseModel):
    """Alerting tunables. Field ``x`` is read from ``PLANMON_ALERT_X``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: Path | None = Field(
        None, description="YAML routing file; unset: every alert goes to the log channel"
    )
    log_path: Path | None = Field(
        None, description="file of the log channel; default $PLANMON_HOME/alerts.log"
    )
    max_attempts: int = Field(5, ge=1, le=100, description="delivery attempts before an alert is given up")
    http_timeout_seconds: float = Field(10.0, gt=0, le=120, description="timeout of webhook and Slack posts")
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=300, description="timeout of SMTP sessions")
    schedule: str = Field(
        "*/30 * * * *", description="cron of planmon_alert's own runs (retries, digest) besides the asset"
    )

    @field_validator("schedule")
    @classmethod
    def _cron_has_five_fields(cls, value: str) -> str:
        return valid_cron(value)


def alert_schedule(environ: Mapping[str, str] | None = None) -> str:
    """planmon_alert's own cron, read and validated when its DAG file is parsed (no I/O); a bad value
    raises ConfigError naming ``PLANMON_ALERT_SCHEDULE``, so the DAG's import fails saying why."""
    schedule: str = one_setting(
        AlertSettings, "schedule", ALERT_PREFIX + "SCHEDULE", environ, label="alerting settings"
    )
    return schedule


def _shared_setting_names() -> frozenset[str]:
    """PLANMON_ALERT_* variables that belong to the shared Settings (e.g. the cooldown)."""
    return frozenset(
        env_name(name) for name in Settings.model_fields if env_name(name).startswith(ALERT_PREFIX)
    )


def is_alerting_variable(key: str) -> bool:
    """True for a ``PLANMON_ALERT_*`` variable that alerting (not the shared Settings) owns."""
    return key.startswith(ALERT_PREFIX) and key not in _shared_setting_names()


def load_alert_settings(environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Read and validate ``PLANMON_ALERT_*``; an unknown or bad variable is a ConfigError naming it."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in environ.items():
        if not is_alerting_variable(key) or raw == "":
            continue
        name = key.removeprefix(ALERT_PREFIX).lower()
        if name not in AlertSettings.model_fields:
            unknown.append(key)
            continue
        values[name] = raw
    if unknown:
        known = ", ".join(ALERT_PREFIX + name.upper() for name in AlertSettings.model_fields)
        raise ConfigError(f"unknown alerting setting(s) {', '.join(sorted(unknown))}", hint=f"known: {known}")
    try:
        return AlertSettings(**values)
    except ValidationError as exc:
        problems = [
            f"{ALERT_PREFIX}{str(error['loc'][0]).upper() if error['loc'] else ''}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError("invalid alerting settings: " + "; ".join(problems)) from exc


def load_planmon_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The shared settings, without the ``PLANMON_ALERT_*`` variables alerting owns.

    ``planmon.config.load_settings`` rejects every unknown ``PLANMON_*`` variable, so alerting
    filters its own out before calling it (see docs/alerting.md: config.py should skip them too).
    """
    environ = os.environ if environ is None else environ
    settings = load_settings({key: value for key, value in environ.items() if not is_alerting_variable(key)})
    # Shared settings under the alerting prefix (the cooldown) are applied here as well, so they hold
    # whether or not load_settings skips the whole PLANMON_ALERT_* prefix.
    shared = {
        name: environ[env_name(name)]
        for name in Settings.model_fields
        if env_name(name).startswith(ALERT_PREFIX) and environ.get(env_name(name))
    }
    if not shared:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), **shared})
    except ValidationError as exc:
        problems = [
            f"{env_name(str(error['loc'][0]))}: {error['msg']}" for error in exc.errors() if error["loc"]
        ]
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
