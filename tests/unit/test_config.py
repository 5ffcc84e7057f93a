from __future__ import annotations

import pytest

from planmon.alerting.settings import alert_schedule
from planmon.config import dag_setting, describe_settings, load_settings
from planmon.errors import ConfigError


def test_defaults_apply_when_nothing_is_set() -> None:
    settings = load_settings({})
    assert settings.baseline_days == 7
    assert settings.collect_row_limit == 5000
    assert settings.retention_days == 30
    assert settings.repository_url is None


def test_values_are_read_and_typed_from_planmon_variables() -> None:
    settings = load_settings({"PLANMON_BASELINE_DAYS": "14", "PLANMON_REGRESSION_RATIO": "2.5", "OTHER": "x"})
    assert settings.baseline_days == 14
    assert settings.regression_ratio == 2.5


def test_every_bad_value_is_named_with_what_it_expects() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PLANMON_BASELINE_DAYS": "0", "PLANMON_COLLECT_SCHEDULE": "every hour"})
    message = str(caught.value)
    assert "PLANMON_BASELINE_DAYS" in message and "greater than or equal to 1" in message
    assert "PLANMON_COLLECT_SCHEDULE" in message and "five fields" in message


def test_unknown_variable_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"PLANMON_BASELIN_DAYS.*planmon config show"):
        load_settings({"PLANMON_BASELIN_DAYS": "3"})


def test_repository_url_and_conn_id_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"PLANMON_REPOSITORY_URL": "sqlite://", "PLANMON_REPOSITORY_CONN_ID": "repo"})


def test_the_plan_change_ratio_is_above_1_and_at_most_the_regression_ratio() -> None:
    assert load_settings({}).plan_change_ratio == 1.25
    with pytest.raises(ConfigError, match=r"PLANMON_PLAN_CHANGE_RATIO \(1.6\) must be at most PLANMON_REG"):
        load_settings({"PLANMON_PLAN_CHANGE_RATIO": "1.6"})
    with pytest.raises(ConfigError, match="PLANMON_PLAN_CHANGE_RATIO: Input should be greater than 1"):
        load_settings({"PLANMON_PLAN_CHANGE_RATIO": "1"})
    both = {"PLANMON_PLAN_CHANGE_RATIO": "1.6", "PLANMON_REGRESSION_RATIO": "2"}
    assert load_settings(both).plan_change_ratio == 1.6


def test_test_variables_are_not_settings() -> None:
    assert (
        load_settings({"PLANMON_CORPUS": "/x", "PLANMON_TEST_MSSQL_URL": "mssql://h/db"}).baseline_days == 7
    )


def test_every_setting_is_described() -> None:
    rows = describe_settings()
    assert {name for name, _, _ in rows} >= {"PLANMON_HOME", "PLANMON_BASELINE_DAYS"}
    assert all(description for _, _, description in rows)


def test_alerting_prefix_is_left_to_alerting_but_its_shared_settings_are_read() -> None:
    settings = load_settings(
        {"PLANMON_ALERT_COOLDOWN_MINUTES": "15", "PLANMON_ALERT_ROUTES": "/etc/routes.yaml"}
    )
    assert settings.alert_cooldown_minutes == 15


def test_the_readme_lists_every_setting_with_its_default() -> None:
    from planmon.config import describe_settings
    from tests.conftest import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    for variable, default, _ in describe_settings():
        shown = f"`{default}`" if default else "(unset)"
        assert f"| `{variable}` | {shown} |" in readme, f"README's configuration table misses {variable}"


def test_a_dag_setting_is_validated_alone_and_defaults_when_unset() -> None:
    assert dag_setting("analyze_schedule", {}) == "0 * * * *"
    assert dag_setting("targets_pool", {"PLANMON_TARGETS_POOL": ""}) == "planmon_targets"
    assert dag_setting("analyze_parallel_batches", {"PLANMON_ANALYZE_PARALLEL_BATCHES": "4"}) == 4
    # another setting being wrong does not break a DAG that does not read it
    assert dag_setting("collect_schedule", {"PLANMON_BASELINE_DAYS": "0"}) == "*/15 * * * *"


@pytest.mark.parametrize(
    ("name", "variable", "raw"),
    [
        ("collect_schedule", "PLANMON_COLLECT_SCHEDULE", "61 * * * *"),  # five fields, not a valid cron
        ("analyze_parallel_batches", "PLANMON_ANALYZE_PARALLEL_BATCHES", "two"),
        ("remediation_poke_seconds", "PLANMON_REMEDIATION_POKE_SECONDS", "0"),
    ],
)
def test_a_bad_dag_setting_fails_naming_the_variable(name: str, variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        dag_setting(name, {variable: raw})


def test_the_alert_dag_schedule_is_validated_too() -> None:
    assert alert_schedule({}) == "*/30 * * * *"
    with pytest.raises(ConfigError, match="PLANMON_ALERT_SCHEDULE"):
        alert_schedule({"PLANMON_ALERT_SCHEDULE": "*/30 * * *"})
