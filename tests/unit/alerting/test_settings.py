"""PLANMON_ALERT_* settings: validated, unknown ones named, the shared settings unaffected."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.alerting.settings import load_alert_settings, load_planmon_settings
from planmon.errors import ConfigError


def test_reads_alerting_variables_and_leaves_the_cooldown_to_settings() -> None:
    environ = {
        "PLANMON_ALERT_ROUTES": "/etc/planmon/routes.yaml",
        "PLANMON_ALERT_MAX_ATTEMPTS": "3",
        "PLANMON_ALERT_COOLDOWN_MINUTES": "15",
        "PLANMON_HOME": "/tmp/planmon",
    }
    alert_settings = load_alert_settings(environ)
    assert alert_settings.routes == Path("/etc/planmon/routes.yaml")
    assert alert_settings.max_attempts == 3
    settings = load_planmon_settings(environ)  # PLANMON_ALERT_ROUTES is not an unknown setting here
    assert settings.alert_cooldown_minutes == 15


def test_defaults() -> None:
    alert_settings = load_alert_settings({})
    assert alert_settings.routes is None
    assert alert_settings.max_attempts == 5


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PLANMON_ALERT_ROUTS": "x"}, "PLANMON_ALERT_ROUTS"),
        ({"PLANMON_ALERT_MAX_ATTEMPTS": "0"}, "PLANMON_ALERT_MAX_ATTEMPTS"),
        ({"PLANMON_ALERT_HTTP_TIMEOUT_SECONDS": "soon"}, "PLANMON_ALERT_HTTP_TIMEOUT_SECONDS"),
        ({"PLANMON_ALERT_SCHEDULE": "hourly"}, "PLANMON_ALERT_SCHEDULE"),
    ],
)
def test_bad_variables_are_named(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_alert_settings(environ)


def test_bad_cooldown_is_named() -> None:
    with pytest.raises(ConfigError, match="PLANMON_ALERT_COOLDOWN_MINUTES"):
        load_planmon_settings({"PLANMON_ALERT_COOLDOWN_MINUTES": "-1"})
