"""planmon's settings: one typed, validated model read from ``PLANMON_*`` environment variables.

Settings are read when a task or command starts (:func:`load_settings`), never at import, so a DAG
file parses even when an unrelated setting is wrong, and the error shows up in the task log saying how
to fix it. The few a DAG file needs when it is parsed (schedules, pools, timeouts) it reads one by one
with :func:`dag_setting`: validated the same way, so a bad value fails that DAG's import with the
variable's name instead of falling back silently.
Secrets never live here: only Airflow connection ids, whose credentials Airflow keeps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planmon.errors import ConfigError
from planmon.model import RegressionKind

ENV_PREFIX = "PLANMON_"


class Settings(BaseModel):
    """Every tunable of planmon, with its default. Field ``x`` is read from ``PLANMON_X``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Paths and the repository (planmon's own store)
    home: Path = Field(Path(".planmon"), description="where planmon keeps its embedded files")
    repository_url: str | None = Field(
        None, description="SQLAlchemy URL of the repository; default: SQLite file in PLANMON_HOME"
    )
    repository_conn_id: str | None = Field(
        None, description="Airflow connection id of the repository (instead of PLANMON_REPOSITORY_URL)"
    )

    # Collection
    collect_schedule: str = Field("*/15 * * * *", description="cron of planmon_collect's data intervals")
    collect_row_limit: int = Field(5000, ge=1, le=1_000_000, description="top N statements by CPU per run")
    collect_deadline_seconds: int = Field(300, ge=10, le=3600, description="per-target collection deadline")
    statement_timeout_ms: int = Field(30_000, ge=100, description="timeout of every collector statement")
    plans_per_query_per_hour: int = Field(4, ge=0, le=60, description="plan-capture budget per query")
    plans_per_run: int = Field(200, ge=0, le=10_000, description="most plans captured per target per run")
    targets_pool: str = Field("planmon_targets", description="Airflow pool collection tasks run in")
    targets_pool_slots: int = Field(8, ge=1, le=1024, description="size of that pool")
    analyze_schedule: str = Field("0 * * * *", description="cron of planmon_analyze's data intervals")
    maintenance_schedule: str = Field("30 3 * * *", description="cron of planmon_maintenance's runs")

    # Plan parsing limits
    max_plan_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="largest plan document accepted")
    max_plan_depth: int = Field(1000, ge=16, description="deepest plan tree accepted")

    # Detection
    baseline_days: int = Field(7, ge=1, le=90, description="baseline window before the analysed window")
    min_executions: int = Field(20, ge=1, description="executions needed on each side of a comparison")
    regression_ratio: float = Field(1.5, gt=1.0, description="current/baseline mean that counts as worse")
    plan_change_ratio: float = Field(
        1.25,
        gt=1.0,
        description="current/baseline mean that counts as worse when both plans are known and the shape "
        "changed (a plan change); at most PLANMON_REGRESSION_RATIO",
    )
    p_value_max: float = Field(0.01, gt=0.0, lt=1.0, description="significance of Welch's test")
    impact_floor_cpu_seconds_per_hour: float = Field(
        10.0,
        ge=0.0,
        description="extra CPU seconds per hour below which a regression is severity info: stored and "
        "listed, never alerted or proposed",
    )
    min_extra_us_per_execution: float = Field(
        250.0,
        ge=0.0,
        description="extra microseconds per execution an info regression (under the impact floor) needs; "
        "smaller changes are not reported at all",
    )
    resolve_after_intervals: int = Field(
        4, ge=1, description="intervals back at baseline before a regression auto-resolves"
    )
    analyze_batch_targets: int = Field(
        10, ge=1, le=1000, description="targets analysed together (one mapped analyze task per batch)"
    )
    analyze_parallel_batches: int = Field(
        2, ge=1, le=64, description="batches of targets one planmon_analyze run analyses at once"
    )

    # Runtime stats as they age (docs/repository.md): collected rows, then hourly, then daily rows
    stats_fine_days: int = Field(2, ge=1, le=90, description="days runtime stats keep their collected grain")
    stats_hourly_days: int = Field(
        8, ge=1, le=400, description="days hourly rollups are kept before they become daily rows"
    )

    # Probes (user-defined check queries, docs/probes.md)
    probes_dir: Path | None = Field(
        None, description="directory of probe YAML files; default: the project's include/probes"
    )
    probe_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="statement timeout of a probe that sets no timeout_seconds"
    )
    probe_max_rows: int = Field(1000, ge=1, le=100_000, description="most rows a probe may return")
    probes_builtin: bool = Field(True, description="run the built-in probes (connectivity, features)")
    probes_schedule: str = Field("*/5 * * * *", description="cron of planmon_probes' data intervals")
    probes_allow_privileged: tuple[str, ...] = Field(
        (),
        description="DANGEROUS: comma-separated target names whose probes run even through a "
        "superuser / SUPER / sysadmin login (docs/probes.md, 'The probe login')",
    )
    probe_allowed_functions: tuple[str, ...] | None = Field(
        None,
        description="functions a DBA reviewed for probes beyond the built-in allow-lists, comma-separated, "
        "as called (schema.name for a schema-qualified one); the guard's deny families still refuse",
    )

    # Remediation (docs/remediation.md; per-target rails live in the target's remediation policy)
    remediation_verify_executions: int = Field(
        20, ge=1, description="post-apply executions verification waits for (N)"
    )
    remediation_verify_minutes: float = Field(
        30.0, ge=0.0, description="longest verification wait after apply, minutes (M)"
    )
    remediation_poke_seconds: float = Field(
        60.0, ge=0.1, description="how often verification re-collects the target while it waits"
    )
    remediation_max_actions_per_hour: int = Field(
        2, ge=0, description="remediations applied per target per hour (a target policy may lower it)"
    )
    remediation_lock_timeout_ms: int = Field(5000, ge=1, description="lock timeout around every action")
    remediation_statement_timeout_ms: int = Field(
        1_800_000, ge=100, description="statement timeout around every action (index builds take time)"
    )
    remediation_approval_timeout_hours: float = Field(
        24.0, gt=0.0, description="approval wait before the default (Reject) applies"
    )
    remediation_reminder_share: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="share of the approval timeout after which a waiting approval is reminded (0: never)",
    )
    remediation_notify: bool = Field(
        True, description="tell the approvers' channels when an approval waits, is answered or times out"
    )
    remediation_predict: bool = Field(
        True, description="predict a proposal's effect without changing anything (PostgreSQL: hypopg)"
    )

    # Alerting and housekeeping
    alert_cooldown_minutes: int = Field(240, ge=0, description="minimum gap between repeats of one alert")
    retention_days: int = Field(30, ge=1, le=3650, description="age after which collected data is purged")
    base_url: str | None = Field(
        None,
        description="Airflow base URL: links in alerts and approvals, an allowed Origin of planmon's pages",
    )

    @field_validator("probe_allowed_functions", "probes_allow_privileged", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("collect_schedule", "probes_schedule", "analyze_schedule", "maintenance_schedule")
    @classmethod
    def _cron_has_five_fields(cls, value: str) -> str:
        return valid_cron(value)

    def ratio_of_kind(self, kind: str) -> float:
        """The ratio a stored regression of ``kind`` was detected at, so whatever judges it over
        (auto-resolution, a remediation's verification) uses the same: ``plan_change_ratio`` for
        ``plan_change`` (detection gives that kind only where it knows both plans), else
        ``regression_ratio``."""
        return self.plan_change_ratio if kind == RegressionKind.PLAN_CHANGE else self.regression_ratio

    @model_validator(mode="after")
    def _one_repository_source(self) -> Settings:
        if self.repository_url and self.repository_conn_id:
            raise ValueError("set PLANMON_REPOSITORY_URL or PLANMON_REPOSITORY_CONN_ID, not both")
        if self.plan_change_ratio > self.regression_ratio:
            raise ValueError(
                f"PLANMON_PLAN_CHANGE_RATIO ({self.plan_change_ratio}) must be at most "
                f"PLANMON_REGRESSION_RATIO ({self.regression_ratio}): a known plan change needs no more "
                "evidence than any slowdown; lower it, or raise PLANMON_REGRESSION_RATIO"
            )
        if self.stats_hourly_days < self.stats_fine_days:
            raise ValueError(
                f"PLANMON_STATS_HOURLY_DAYS ({self.stats_hourly_days}) must be at least "
                f"PLANMON_STATS_FINE_DAYS ({self.stats_fine_days}): rows become hourly before daily"
            )
        return self

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def probe_extra_functions(self) -> tuple[str, ...]:
        """PLANMON_PROBE_ALLOWED_FUNCTIONS as names (none when unset)."""
        return self.probe_allowed_functions or ()

    @property
    def resolved_probes_dir(self) -> Path:
        if self.probes_dir is not None:
            return self.probes_dir.expanduser().resolve()
        return Path(__file__).resolve().parents[2] / "include" / "probes"


def valid_cron(value: str) -> str:
    """A five-field cron expression croniter accepts, else ValueError saying what one looks like."""
    from croniter import croniter  # type: ignore[import-untyped]

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("a cron expression has five fields croniter accepts, e.g. '*/15 * * * *'")
    return value


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``PLANMON_*`` variables; unknown ones are an error.

    Raises :class:`ConfigError` listing every bad variable with what it expects.
    """
    environ = os.environ if environ is None else environ
    known = {env_name(name): name for name in Settings.model_fields}
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        if key not in known and key.startswith(_OWNED_PREFIXES):
            continue  # validated by its own model
        if key not in known:
            unknown.append(key)
            continue
        values[known[key]] = raw if raw != "" else None
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(sorted(unknown))}",
            hint="check the spelling; `planmon config show` lists every setting",
        )
    try:
        return Settings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc), hint="`planmon config show --help` lists every setting") from exc


def dag_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting, read and validated when a DAG file is parsed (no I/O): its value, or its default
    when ``PLANMON_<NAME>`` is unset or empty. A bad value raises :class:`ConfigError` naming the
    variable, so the DAG's import fails and Airflow shows why."""
    if name not in Settings.model_fields:
        raise KeyError(f"{name} is not a planmon setting")
    return one_setting(Settings, name, env_name(name), environ, label="settings")


def one_setting(
    model: type[BaseModel],
    name: str,
    variable: str,
    environ: Mapping[str, str] | None = None,
    *,
    label: str,
) -> Any:
    """Field ``name`` of ``model`` read alone from ``variable`` (its default when unset or empty),
    validated by the model; a bad value is a ConfigError naming the variable."""
    raw = (os.environ if environ is None else environ).get(variable) or None
    try:
        return getattr(model.model_validate({name: raw} if raw is not None else {}), name)
    except ValidationError as exc:
        message = "; ".join(str(error["msg"]) for error in exc.errors())
        raise ConfigError(
            f"invalid {label}: {variable}: {message} (got {raw!r})",
            hint="`planmon config show --help` lists every setting",
        ) from exc


# Prefixes validated by their own models (planmon.alerting.settings reads PLANMON_ALERT_*).
_OWNED_PREFIXES = ("PLANMON_ALERT_",)

# PLANMON_* variables that configure tests and tools rather than planmon itself.
_NOT_SETTINGS = frozenset(
    {
        "PLANMON_CORPUS",
        "PLANMON_TEST_MSSQL_URL",
        "PLANMON_PG_BINDIR",
        "PLANMON_UPDATE_SNAPSHOTS",
        "PLANMON_REGEN_GOLDEN",
    }
)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = error.get("loc") or ()
        name = env_name(str(location[0])) if location else "settings"
        given = error.get("input")
        given_text = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        problems.append(f"{name}: {error['msg']}{given_text}")
    return "invalid settings: " + "; ".join(problems)


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, for ``--help`` and docs."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None or default == () else str(default)
        rows.append((env_name(name), shown, info.description or ""))
    return rows
