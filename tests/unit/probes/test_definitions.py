"""Probe YAML: valid files load, and every mistake names the file, the probe and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.errors import ConfigError
from planmon.model import Target
from planmon.model.probes import ProbeDefinition, TargetSelector
from planmon.probes.definitions import load_probe_directory, load_probe_file

GOOD = """\
probes:
  - name: orders_backlog
    description: new orders waiting
    kind: health
    targets: {names: [shop], environments: prod, tags: {team: payments}}
    sql: SELECT count(*) FROM orders WHERE state = 'new'
    result: scalar
    operator: ">="
    warning: 100
    critical: 1000
    schedule: "*/10 * * * *"
    timeout_seconds: 5
    capture_plan: true
    severity: critical
  - name: per_engine
    sql:
      postgres: SELECT 1
      mysql: SELECT 2
    operator: "!="
    critical: 1
"""


def write(tmp_path: Path, text: str, name: str = "probes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads_every_field(tmp_path: Path) -> None:
    first, second = load_probe_file(write(tmp_path, GOOD))
    assert first.name == "orders_backlog"
    assert first.kind == "health"
    assert first.targets == TargetSelector(names=("shop",), environments=("prod",), tags={"team": "payments"})
    assert first.sql_for("postgres") == first.sql_for("mysql") == first.sql_for("sqlserver")
    assert (first.operator, first.warning, first.critical) == (">=", 100, 1000)
    assert (first.schedule, first.timeout_seconds, first.capture_plan) == ("*/10 * * * *", 5, True)
    assert first.plan_change_alerts
    assert second.sql_for("postgres") == "SELECT 1"
    assert second.sql_for("sqlserver") is None
    assert not second.plan_change_alerts
    assert ProbeDefinition.model_validate(first.as_stored()) == first  # the stored JSON round-trips


@pytest.mark.parametrize(
    ("field_line", "expected"),
    [
        ("    operator: '=>'", "probes[0] (bad).operator"),
        ("    result: table", "probes[0] (bad).result"),
        ("    kind: security", "probes[0] (bad).kind"),
        ("    schedule: every minute", "probes[0] (bad).schedule: 'every minute' is not a five-field cron"),
        ("    timeout_seconds: -3", "probes[0] (bad).timeout_seconds"),
        ("    warning: lots", "probes[0] (bad).warning"),
        ("    severty: critical", "probes[0] (bad).severty: unknown field"),
        ("    capture_plan: perhaps", "probes[0] (bad).capture_plan"),
        ("    targets: {teams: [a]}", "probes[0] (bad).targets.teams: unknown field"),
    ],
)
def test_bad_field_names_file_probe_and_field(tmp_path: Path, field_line: str, expected: str) -> None:
    path = write(tmp_path, f"probes:\n  - name: bad\n    sql: SELECT 1\n    critical: 1\n{field_line}\n")
    with pytest.raises(ConfigError) as caught:
        load_probe_file(path)
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_missing_fields_and_rules_are_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "probes:\n"
        "  - name: no_sql\n    critical: 1\n"
        "  - name: no_threshold\n    sql: SELECT 1\n"
        "  - name: inverted\n    sql: SELECT 1\n    operator: '>'\n    warning: 10\n    critical: 5\n"
        "  - name: 'bad name!'\n    sql: SELECT 1\n    critical: 1\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_probe_file(path)
    message = caught.value.message
    assert "probes[0] (no_sql).sql: Field required" in message
    assert "probes[1] (no_threshold): set a warning or a critical threshold" in message
    assert "probes[2] (inverted): with operator '>', critical must be >= warning" in message
    assert "probes[3] (bad name!).name" in message


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "probes:\n  - name: x\n    sql: [unclosed\n")
    with pytest.raises(ConfigError, match=r"probes\.yaml: not valid YAML at line \d+, column \d+"):
        load_probe_file(path)


def test_wrong_top_level_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "- name: x\n")
    with pytest.raises(ConfigError, match="a probe file is a mapping with one key, probes:"):
        load_probe_file(path)


def test_directory_reports_every_bad_file_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "probes:\n  - name: a\n    sql: SELECT 1\n    critical: 1\n", "one.yaml")
    write(
        tmp_path, "probes:\n  - name: b\n    sql: SELECT 1\n    operator: '~'\n    critical: 1\n", "two.yml"
    )
    write(tmp_path, "probes: [[\n", "three.yaml")
    write(tmp_path, "not a probe file", "notes.txt")
    with pytest.raises(ConfigError) as caught:
        load_probe_directory(tmp_path)
    assert "two.yml: probes[0] (b).operator" in caught.value.message
    assert "three.yaml: not valid YAML" in caught.value.message
    (tmp_path / "two.yml").unlink()
    (tmp_path / "three.yaml").unlink()
    write(tmp_path, "probes:\n  - name: a\n    sql: SELECT 2\n    critical: 1\n", "again.yaml")
    with pytest.raises(ConfigError, match=r"one\.yaml: probe name .a. is already defined in .*again\.yaml"):
        load_probe_directory(tmp_path)
    (tmp_path / "again.yaml").unlink()
    assert [(p.name, Path(s).name) for p, s in load_probe_directory(tmp_path)] == [("a", "one.yaml")]


def _target(name: str, environment: str | None = None, **tags: str) -> Target:
    from datetime import datetime

    now = datetime(2026, 1, 1)
    return Target(
        id=1, name=name, engine="postgres", conn_id="c", environment=environment, tags=dict(tags),
        databases=(), enabled=True, remediation_mode="propose", remediation_conn_id=None,
        created_at=now, updated_at=now,
    )  # fmt: skip


def test_target_selection_by_name_environment_or_tags() -> None:
    assert TargetSelector().matches(_target("any"))
    by_name = TargetSelector(names=("shop",))
    assert by_name.matches(_target("shop")) and not by_name.matches(_target("other"))
    by_env = TargetSelector(environments=("prod",))
    assert by_env.matches(_target("x", "prod")) and not by_env.matches(_target("x", "dev"))
    by_tags = TargetSelector(tags={"team": "payments", "tier": "1"})
    assert by_tags.matches(_target("x", team="payments", tier="1", extra="y"))
    assert not by_tags.matches(_target("x", team="payments"))
    probe = ProbeDefinition(name="p", sql={"mysql": "SELECT 1"}, critical=1)
    assert not probe.applies_to(_target("shop"))  # no SQL for postgres
