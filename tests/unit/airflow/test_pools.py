"""The targets pool: created from the settings, resized on a re-run, and made by both local set-ups."""

from __future__ import annotations

import pytest

from planmon.airflow.pools import main
from tests.conftest import PROJECT_ROOT


@pytest.mark.airflow
def test_the_pool_is_created_from_the_settings_and_resized_on_a_rerun(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.models.pool import Pool

    monkeypatch.setenv("PLANMON_TARGETS_POOL", "planmon_targets_test")
    monkeypatch.setenv("PLANMON_TARGETS_POOL_SLOTS", "3")
    assert Pool.get_pool("planmon_targets_test") is None
    assert main([]) == 0
    assert Pool.get_pool("planmon_targets_test").slots == 3  # type: ignore[union-attr]
    monkeypatch.setenv("PLANMON_TARGETS_POOL_SLOTS", "5")
    assert main([]) == 0
    assert Pool.get_pool("planmon_targets_test").slots == 5  # type: ignore[union-attr]
    assert capsys.readouterr().out.splitlines()[-1] == "Airflow pool planmon_targets_test: 5 slots"


def test_a_bad_size_is_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANMON_TARGETS_POOL_SLOTS", "0")
    assert main([]) == 1
    assert "PLANMON_TARGETS_POOL_SLOTS" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["scripts/airflow-local.sh", "docker/airflow-init.sh"])
def test_both_local_set_ups_create_the_pool_the_same_way(script: str) -> None:
    text = (PROJECT_ROOT / script).read_text()
    assert "-m planmon.airflow.pools" in text
    assert "airflow pools set" not in text
