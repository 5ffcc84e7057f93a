"""Analysis, retention and storage at fleet scale, on a real PostgreSQL repository.

A throwaway PostgreSQL (planmon.embedded, from the installed server binaries, 127.0.0.1 only) gets a
planmon repository made by the project's own migrations (``Repository.init_schema``), then 50
targets x 1,000 SQL Server queries x 168 hourly intervals of Query Store-shaped runtime stats
(bench/_synthetic.py: diurnal load, aborted/exception rows, plans that alternate or recompile; about
3% of the queries regress in the last hour, and a one-hour spike falls in it for 1 in 24 of the
generator's spiking queries), about 9.7 M rows COPYed in binary (bench/_pgcopy.py,
typed from planmon.store.schema) in the order collection writes them (an interval at a time, one
write per target, rows in key order), with queries and plans (showplan bodies from tests/fixtures)
written by the repository's own upserts. The runtime stats go in a day at a time, each day followed
by the store's own ``StatsStore.roll_up`` (timed) and a VACUUM (ANALYZE) standing in for autovacuum,
so the repository looks as the daily maintenance DAG keeps it at the settings in force
(PLANMON_STATS_FINE_DAYS, PLANMON_STATS_HOURLY_DAYS), runtime_stats' free space included.

Measured in the same run, each against a baseline doing the same work the plainest way:
  (a) one hourly analysis of every target, as a whole process: ``planmon analyze --start --end`` (the
      last loaded hour) in a subprocess under an address-space cap (--memory-cap-gb), wall time and
      peak RSS (``os.wait4``'s rusage of that child). Baseline: one plain SQL ``GROUP BY target,
      query, plan, execution type`` of the rows the analysis considers (the baseline window and the
      analysed window, every grain) run by ``psql`` in its own process. ``planmon --help``'s process
      time is reported too: the CLI's start-up is part of the analysis' wall time.
  (b) the retention purge of the oldest day: ``RetentionStore.purge`` (cutoff one day after the oldest
      data) vs ``DELETE FROM <table> WHERE interval_start < cutoff`` on each runtime-stats table of
      an identical copy of the database (CREATE DATABASE ... TEMPLATE).
  (c) bytes per row of runtime_stats (as loaded) and runtime_stats_rollup (as rolled up), table and
      indexes (every partition when the table is partitioned), and the projected size of the runtime
      stats of 50 targets x 5,000 queries x 30 days collected every 15 minutes at the rollup settings.
Goals: analysis <= 3x the aggregate and peak RSS < 2 GB; purge <= 2x the plain DELETE; projection
< 30 GB. The last line is one ``key=value`` summary of every figure; exit 1 when a goal is missed
(``--no-goals`` only reports). ``--quick`` is a small size (5 targets x 100 queries x 72 h) for tests.

    .venv/bin/python bench/analyze_fleet.py [--quick] [--no-goals] [--targets 50] [--queries 1000]
        [--hours 168] [--memory-cap-gb 8] [--load-via copy|repository] [--profile FILE.prof]
        [--explain-ms 500] [--pgoptions "-c jit=off"]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Float, Table, cast, func, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench._pgcopy import complete, copy_frame  # noqa: E402
from bench._synthetic import SCENARIOS, SyntheticData, generate  # noqa: E402
from planmon.config import Settings, load_settings  # noqa: E402
from planmon.embedded import PostgresServer, postgres_bindir, postgres_server  # noqa: E402
from planmon.model import PlanRecord, QueryRecord, TargetSpec  # noqa: E402
from planmon.store import Repository  # noqa: E402
from planmon.store.collection import RUNTIME_STATS_KEY, CollectionStore  # noqa: E402
from planmon.store.connection import create_repository_engine  # noqa: E402
from planmon.store.retention import RetentionStore  # noqa: E402
from planmon.store.schema import runtime_stats, runtime_stats_rollup  # noqa: E402
from planmon.store.stats import StatsStore  # noqa: E402

START = datetime(2026, 1, 1)
DATABASE = "planmon"
COPY_DATABASE = "planmon_delete"
STATS_TABLES: tuple[Table, ...] = (runtime_stats, runtime_stats_rollup)
DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
PLAN_BODIES = ("KeyLookup.sqlplan", "spill-warning.sqlplan", "convert_implicit_plan.sqlplan")
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "plans" / "sqlserver"
# the projection's fleet (issue 21): 50 targets x 5,000 queries x 30 days, collected every 15 minutes
PROJECTION = {"targets": 50, "queries": 5000, "days": 30, "intervals_per_day": 96}
# a one-interval spike lands in the analysed hour once a day: 1/24 of the generator's spiking queries
ONE_HOUR_WEIGHTS = {"one_interval_spike": SCENARIOS["one_interval_spike"][1] / 24}
GOAL_ANALYSIS_RATIO = 3.0
GOAL_PEAK_BYTES = 2 * 2**30
GOAL_PURGE_RATIO = 2.0
GOAL_PROJECTION_GB = 30.0
# a repository server sized like a small dedicated one, not the harness' 64 MB test default
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}


@dataclass(frozen=True)
class Size:
    targets: int
    queries: int  # per target
    hours: int  # hourly intervals loaded; the last one is the analysed window


FULL = Size(50, 1000, 168)
QUICK = Size(5, 100, 72)  # 72 h so that the roll-up has a day of rows older than the 2 fine days


@dataclass
class ProcessRun:
    """One child process: wall seconds, peak RSS (bytes), exit code and output."""

    seconds: float
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def out_of_memory(self) -> bool:
        killed = self.returncode == -signal.SIGKILL
        return self.returncode != 0 and (
            killed or "MemoryError" in self.stderr or "Cannot allocate" in self.stderr
        )


@dataclass
class Figures:
    """Every figure the run reports; the summary line prints them in this order."""

    rows: int = 0
    load_s: float = 0.0
    rollup_s: float = 0.0
    rolled_rows: int = 0
    analysis_s: float = float("nan")
    aggregate_s: float = float("nan")
    analysis_ratio: float = float("nan")
    peak_rss_mb: float = float("nan")
    cli_help_s: float = float("nan")
    detected: int = 0
    purge_s: float = float("nan")
    delete_s: float = float("nan")
    purge_ratio: float = float("nan")
    purged_rows: int = 0
    stats_bytes_per_row: float = float("nan")
    rollup_bytes_per_row: float = float("nan")
    projection_gb: float = float("nan")
    missed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        values = {name: value for name, value in vars(self).items() if name != "missed"}
        text = " ".join(f"{name}={_number(value)}" for name, value in values.items())
        goals = "missed:" + ",".join(self.missed) if self.missed else "met"
        return f"analyze_fleet: {text} goals={goals}"


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


# -- the repository and its data ------------------------------------------------------------------


def create_database(server: PostgresServer, name: str, *, template: str | None = None) -> None:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as connection:
        suffix = f" TEMPLATE {template}" if template else ""
        connection.execute(f"CREATE DATABASE {name}{suffix}")  # bench-owned names, not input


def repository_url(server: PostgresServer, database: str = DATABASE) -> str:
    return f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{database}"


def plan_bodies() -> list[bytes]:
    return [(FIXTURES / name).read_bytes() for name in PLAN_BODIES]


@dataclass(frozen=True)
class FleetTarget:
    """One stored target: its repository id, its generated runtime stats (in interval order, not
    loaded yet) and the maps from the generator's query and plan numbers to the repository's ids."""

    target_id: int
    stats: pd.DataFrame
    query_map: np.ndarray
    plan_map: np.ndarray


def store_fleet(
    repository: Repository, size: Size, *, seed: int, positive_share: float
) -> tuple[list[FleetTarget], int]:
    """Targets, queries and plans through the repository; (the targets, regressing queries)."""
    bodies = plan_bodies()
    targets: list[FleetTarget] = []
    positives = 0
    for index in range(size.targets):
        spec = TargetSpec(name=f"fleet-{index:03d}", engine="sqlserver", conn_id="bench_fleet")
        target_id = repository.add_target(spec).id
        data = generate(
            size.queries,
            seed + index,
            baseline_hours=size.hours - 1,
            window_hours=1,
            targets=1,
            start=START,
            positive_share=positive_share,
            scenario_weights=ONE_HOUR_WEIGHTS,
        )
        targets.append(_store_target(repository, target_id, data, bodies))
        positives += sum(1 for kind in data.labels.values() if kind is not None)
    return targets, positives


def _store_target(
    repository: Repository, target_id: int, data: SyntheticData, bodies: Sequence[bytes]
) -> FleetTarget:
    collection = CollectionStore(repository)
    query_numbers = sorted({int(q) for q in data.plans["query_id"]})
    query_ids = collection.upsert_queries(
        target_id,
        [QueryRecord(f"q{q}", query_text=f"SELECT /* fleet query {q} */ col FROM tab WHERE id = ?")
         for q in query_numbers],
    )  # fmt: skip
    records = [
        PlanRecord(
            plan_key=f"p{row.plan_id}",
            query_key=f"q{row.query_id}",
            shape_hash=row.shape_hash,
            body_format="showplan_xml",
            body=bodies[(row.plan_id - 1) % len(bodies)],
            is_forced=bool(row.is_forced),
            forcing_type=row.forcing_type,
            force_failure_count=int(row.force_failure_count),
        )
        for row in data.plans.itertuples(index=False)
    ]
    plan_ids = collection.upsert_plans(target_id, records)
    return FleetTarget(
        target_id=target_id,
        stats=data.stats,
        query_map=_lookup({q: query_ids[("", f"q{q}")] for q in query_numbers}),
        plan_map=_lookup({int(p): plan_ids[f"p{p}"] for p in data.plans["plan_id"]}),
    )


def load_interval_range(
    repository: Repository,
    connection: psycopg.Connection[Any],
    targets: Sequence[FleetTarget],
    start: datetime,
    end: datetime,
    *,
    via: str,
) -> int:
    """Every target's runtime stats of intervals starting in [start, end); rows written.

    Written as collection writes them: an interval at a time, one write per target, its rows in the
    repository's key order; the order rows arrive in is the order indexes are built in, and so
    part of the bytes per row measured."""
    rows = 0
    moment = start
    while moment < end:
        following = moment + timedelta(hours=1)
        for target in targets:
            starts = target.stats["interval_start"].to_numpy()
            first, last = np.searchsorted(starts, [np.datetime64(moment), np.datetime64(following)])
            if last > first:
                rows += _write_stats(repository, connection, target, slice(int(first), int(last)), via=via)
        moment = following
    return rows


def _write_stats(
    repository: Repository,
    connection: psycopg.Connection[Any],
    target: FleetTarget,
    rows: slice,
    *,
    via: str,
) -> int:
    stats = target.stats.iloc[rows]
    rng = np.random.default_rng([target.target_id, rows.start])
    frame = complete(runtime_stats, _stats_values(stats, target, rng), len(stats))
    frame = frame.sort_values(list(RUNTIME_STATS_KEY), ignore_index=True)
    if via == "copy":
        try:
            with connection.transaction():
                return copy_frame(connection, runtime_stats, frame)
        except psycopg.errors.CheckViolation as exc:
            if "partition" not in str(exc):
                raise
            # a partitioned runtime_stats without a partition for these days yet: the repository's
            # own write makes what it needs; the next COPYs then find the partitions
            print(f"  COPY found no partition ({exc.diag.message_primary}); writing through the repository")
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return CollectionStore(repository).upsert_runtime_stats(records)


def _lookup(mapping: dict[int, int]) -> np.ndarray:
    table = np.zeros(max(mapping) + 1, dtype=np.int64)
    table[list(mapping)] = list(mapping.values())
    return table


def _stats_values(stats: pd.DataFrame, target: FleetTarget, rng: np.random.Generator) -> dict[str, Any]:
    """runtime_stats values by column name: the generator's, plus the Query Store columns it leaves
    out (min/max, reads, rows, memory), derived from them; columns not named here stay NULL."""
    values: dict[str, Any] = {name: stats[name].to_numpy() for name in stats.columns}
    values["target_id"] = np.full(len(stats), target.target_id, dtype=np.int64)
    values["query_id"] = target.query_map[stats["query_id"].to_numpy()]
    values["plan_id"] = target.plan_map[stats["plan_id"].to_numpy()]
    single = stats["executions"].to_numpy() == 1
    for metric in ("cpu_us", "duration_us"):
        mean = stats[f"{metric}_mean"].to_numpy()
        values[f"{metric}_min"] = np.where(single, mean, mean * rng.uniform(0.1, 0.9, len(stats)))
        values[f"{metric}_max"] = np.where(single, mean, mean * rng.uniform(1.5, 20.0, len(stats)))
    reads = stats["logical_reads_mean"].to_numpy()
    spread = stats["cpu_us_stdev"].to_numpy() / stats["cpu_us_mean"].to_numpy()
    values["logical_reads_stdev"] = reads * spread
    values["physical_reads_mean"] = reads * rng.uniform(0.0, 0.05, len(stats))
    values["rows_mean"] = np.exp(rng.uniform(0.0, 7.0, len(stats)))
    values["memory_kb_mean"] = rng.uniform(0.0, 2048.0, len(stats))
    return values


# The table (heap with TOAST, free-space and visibility maps) and each of its indexes; a partitioned
# table or index ('p', 'I') has no storage of its own: its partitions' (pg_partition_tree) add up.
RELATION_PARTS_SQL = """
WITH parts AS (
    SELECT c.oid, c.relname, c.relkind, 0 AS position FROM pg_class c WHERE c.oid = to_regclass(%(table)s)
    UNION ALL
    SELECT i.indexrelid, ic.relname, ic.relkind, 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = to_regclass(%(table)s)
)
SELECT p.relname,
       CASE WHEN p.relkind IN ('p', 'I') THEN
                (SELECT coalesce(sum(CASE WHEN p.relkind = 'p' THEN pg_table_size(t.relid)
                                          ELSE pg_relation_size(t.relid) END), 0)
                 FROM pg_partition_tree(p.oid) t)
            WHEN p.relkind = 'i' THEN pg_relation_size(p.oid)
            ELSE pg_table_size(p.oid) END
FROM parts p ORDER BY p.position, p.relname
"""


def relation_parts(connection: psycopg.Connection[Any], table: Table) -> dict[str, int]:
    """Bytes of the table and of each of its indexes, every partition summed (see RELATION_PARTS_SQL)."""
    parts = {
        str(name): int(size) for name, size in connection.execute(RELATION_PARTS_SQL, {"table": table.name})
    }
    if not parts:
        raise RuntimeError(f"table {table.name} not found in the repository")
    return parts


def bytes_per_row(server: PostgresServer, table: Table) -> float:
    """Bytes of the table and its indexes per row; prints each part's share."""
    count = select(func.count()).select_from(table).compile(dialect=DIALECT).string
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
        parts = relation_parts(connection, table)
        row = connection.execute(count).fetchone()
    rows = int(row[0]) if row else 0
    if not rows:
        return float("nan")
    shares = ", ".join(f"{name} {size / rows:.0f}" for name, size in parts.items())
    print(f"  {table.name}: {sum(parts.values()) / rows:.0f} bytes per row of {rows:,} ({shares})")
    return sum(parts.values()) / rows


def vacuum_analyze(server: PostgresServer) -> float:
    """VACUUM (ANALYZE) the stats tables, as autovacuum would after a load or roll-up; seconds."""
    started = time.perf_counter()
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
        for table in STATS_TABLES:
            connection.execute(f"VACUUM (ANALYZE) {table.name}")  # schema names, not input
    return time.perf_counter() - started


# -- processes ------------------------------------------------------------------------------------


def run_process(
    command: Sequence[str], *, env: dict[str, str] | None = None, memory_cap: int = 0
) -> ProcessRun:
    """Run ``command`` to its end; wall time and the peak RSS of that child (``os.wait4``)."""

    def cap_memory() -> None:
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        # the cap must be in place before the child allocates anything: preexec_fn, in the child
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, preexec_fn=cap_memory)  # noqa: PLW1509
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(
            seconds=seconds,
            peak_rss=usage.ru_maxrss * 1024,  # KiB on Linux
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def planmon_command(*args: str, profile: Path | None = None) -> list[str]:
    """The ``planmon`` console script of this environment (else ``python -m planmon.cli``)."""
    script = Path(sys.executable).with_name("planmon")
    entry = [str(script)] if script.is_file() else ["-m", "planmon.cli"]
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return [sys.executable, *profiler, *entry, *args]


def planmon_env(server: PostgresServer, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PLANMON_REPOSITORY_CONN_ID"}
    env.update({"PLANMON_REPOSITORY_URL": repository_url(server), "PLANMON_HOME": str(home)})
    return env


def aggregate_sql(start: datetime, end: datetime) -> str:
    """The baseline: per target, query, plan and execution type, the execution-weighted sums over
    every grain's rows starting in [start, end), as plain SQL."""
    sources = [
        select(
            table.c.target_id, table.c.query_id, table.c.plan_id, table.c.execution_type,
            table.c.executions, table.c.cpu_us_mean, table.c.cpu_us_stdev, table.c.duration_us_mean,
        ).where(table.c.interval_start >= start, table.c.interval_start < end)
        for table in STATS_TABLES
    ]  # fmt: skip
    rows = union_all(*sources).subquery("rows")
    n = cast(rows.c.executions, Float)
    keys = (rows.c.target_id, rows.c.query_id, rows.c.plan_id, rows.c.execution_type)
    statement = select(
        *keys,
        func.sum(rows.c.executions).label("executions"),
        func.sum(n * rows.c.cpu_us_mean).label("cpu_total"),
        func.sum(
            n * (rows.c.cpu_us_stdev * rows.c.cpu_us_stdev + rows.c.cpu_us_mean * rows.c.cpu_us_mean)
        ).label("cpu_second_moment"),
        func.sum(n * rows.c.duration_us_mean).label("duration_total"),
        func.count().label("intervals"),
    ).group_by(*keys)
    return str(statement.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))


def psql_command(server: PostgresServer, sql: str) -> list[str]:
    psql = postgres_bindir() / "psql"
    return [
        str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", DATABASE, "-c", sql,
    ]  # fmt: skip


@dataclass(frozen=True)
class Window:
    baseline_start: datetime
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Diagnostics:
    """Further analysis runs after the measured one, to see where its time goes (none by default)."""

    profile: Path | None = None  # cProfile output file
    explain_ms: float | None = None  # auto_explain threshold
    pgoptions: str | None = None  # libpq PGOPTIONS for a re-run of both sides, e.g. "-c jit=off"


def measure_analysis(
    server: PostgresServer,
    window: Window,
    figures: Figures,
    *,
    memory_cap: int,
    home: Path,
    diagnostics: Diagnostics,
) -> None:
    """(a): the analysis process vs the psql aggregate, and ``planmon --help``."""
    env = planmon_env(server, home)
    helps = [run_process(planmon_command("--help"), env=env) for _ in range(3)]
    figures.cli_help_s = statistics.median(run.seconds for run in helps)
    print(f"planmon --help (whole process, median of 3): {figures.cli_help_s:.2f} s")
    aggregate = psql_command(server, aggregate_sql(window.baseline_start, window.end))
    run_process(aggregate)  # warm-up: both sides then read from the same warm caches
    baseline = run_process(aggregate)
    if baseline.returncode != 0:
        raise RuntimeError(f"the psql aggregate failed: {baseline.stderr.strip()[-1500:]}")
    figures.aggregate_s = baseline.seconds
    groups = baseline.stdout.count("\n")
    print(
        f"baseline: psql GROUP BY target, query, plan, execution type: {baseline.seconds:.2f} s, "
        f"{groups:,} groups"
    )
    window_args = ("analyze", "--start", window.start.isoformat(), "--end", window.end.isoformat())
    analysis = run_process(planmon_command(*window_args), env=env, memory_cap=memory_cap)
    _report_analysis(analysis, figures, memory_cap)
    _diagnose(server, env, window_args, aggregate, diagnostics, memory_cap=memory_cap)


def _diagnose(
    server: PostgresServer,
    env: dict[str, str],
    window_args: Sequence[str],
    aggregate: Sequence[str],
    diagnostics: Diagnostics,
    *,
    memory_cap: int,
) -> None:
    """The further runs (after the measured one: they see its regressions open)."""
    if diagnostics.pgoptions is not None:
        options = {**env, "PGOPTIONS": diagnostics.pgoptions}
        run_process(aggregate, env=options)
        plain = run_process(aggregate, env=options)
        again = run_process(planmon_command(*window_args), env=options, memory_cap=memory_cap)
        print(
            f"with PGOPTIONS={diagnostics.pgoptions!r}: aggregate {plain.seconds:.2f} s, analysis "
            f"{again.seconds:.2f} s (exit {again.returncode}, peak RSS {again.peak_rss / 2**20:,.0f} MiB), "
            f"ratio {again.seconds / plain.seconds:.2f}x"
        )
    if diagnostics.profile is not None:
        command = planmon_command(*window_args, profile=diagnostics.profile)
        profiled = run_process(command, env=env, memory_cap=memory_cap)
        print(
            f"profile of another analysis run ({profiled.seconds:.1f} s under cProfile, peak RSS "
            f"{profiled.peak_rss / 2**20:,.0f} MiB) in {diagnostics.profile}"
        )
        _print_profile(diagnostics.profile)
    if diagnostics.explain_ms is not None:
        threshold = diagnostics.explain_ms
        plans = explained_run(server, planmon_command(*window_args), env=env, slower_than_ms=threshold)
        print(f"plans of the analysis' statements over {threshold:g} ms (auto_explain, another run):")
        print(plans or "  (none)")


def _report_analysis(analysis: ProcessRun, figures: Figures, memory_cap: int) -> None:
    figures.peak_rss_mb = analysis.peak_rss / 2**20
    if analysis.returncode != 0:
        why = (
            f"out of memory under the {memory_cap / 2**30:.0f} GB cap" if analysis.out_of_memory else "failed"
        )
        print(f"planmon analyze {why} (exit {analysis.returncode}) after {analysis.seconds:.1f} s:")
        print("  " + analysis.stderr.strip()[-2000:].replace("\n", "\n  "))
        figures.missed.append("analysis_failed")
        return
    figures.analysis_s = analysis.seconds
    figures.analysis_ratio = analysis.seconds / figures.aggregate_s
    found = re.search(r"(\d+) regression\(s\)", analysis.stdout)
    figures.detected = int(found.group(1)) if found else 0
    print(
        f"planmon analyze (whole process): {analysis.seconds:.2f} s, "
        f"peak RSS {figures.peak_rss_mb:,.0f} MiB, "
        f"{figures.detected:,} regressions; ratio to the aggregate {figures.analysis_ratio:.2f}x"
    )


def explained_run(
    server: PostgresServer, command: Sequence[str], *, env: dict[str, str], slower_than_ms: float
) -> str:
    """Run ``command`` with auto_explain (ANALYZE, BUFFERS) on for the repository database's new
    sessions; the plans of its statements slower than ``slower_than_ms``, from the server log."""
    log = server.datadir.parent / "server.log"  # where planmon.embedded starts the server logging
    offset = log.stat().st_size
    settings = {
        "session_preload_libraries": "auto_explain",
        "auto_explain.log_min_duration": f"{slower_than_ms:g}ms",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
    }
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as connection:
        for name, value in settings.items():  # bench-owned names and values, not input
            connection.execute(f"ALTER DATABASE {DATABASE} SET {name} = '{value}'")
    try:
        run_process(command, env=env)
    finally:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE {DATABASE} RESET ALL")
    with log.open(errors="replace") as text:
        text.seek(offset)
        lines = text.read().splitlines()
    plans = [line for line in lines if "duration:" in line or line.startswith(("\t", " "))]
    return "\n".join(line if len(line) <= 300 else line[:300] + " ..." for line in plans)[-40_000:]


def _print_profile(path: Path, top: int = 30) -> None:
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(str(path), stream=text).sort_stats("cumulative").print_stats(top)
    print(text.getvalue())


# -- retention ------------------------------------------------------------------------------------


def oldest_interval(server: PostgresServer) -> datetime:
    starts = union_all(*(select(table.c.interval_start) for table in STATS_TABLES)).subquery()
    sql = select(func.min(starts.c.interval_start)).compile(dialect=DIALECT).string
    with psycopg.connect(server.dsn(DATABASE)) as connection:
        row = connection.execute(sql).fetchone()
    assert row is not None and row[0] is not None, "no runtime stats loaded"
    return row[0]  # type: ignore[no-any-return]


def measure_purge(server: PostgresServer, settings: Settings, figures: Figures) -> None:
    """(b): RetentionStore.purge of the oldest day vs a plain DELETE of it on an identical copy."""
    cutoff = oldest_interval(server) + timedelta(days=1)
    started = time.perf_counter()
    create_database(server, COPY_DATABASE, template=DATABASE)
    print(f"copied the repository for the plain DELETE in {time.perf_counter() - started:.1f} s")
    with psycopg.connect(server.dsn(COPY_DATABASE), autocommit=True) as connection:
        connection.execute("CHECKPOINT")
        started = time.perf_counter()
        deleted = 0
        with connection.transaction():
            for table in STATS_TABLES:
                sql = f"DELETE FROM {table.name} WHERE interval_start < %s"  # schema names, value bound
                deleted += connection.execute(sql, [cutoff]).rowcount
        figures.delete_s = time.perf_counter() - started
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
        connection.execute("CHECKPOINT")
    days = settings.retention_days
    with Repository(create_repository_engine(make_url(repository_url(server)))) as repository:
        started = time.perf_counter()
        purged = RetentionStore(repository).purge(now=cutoff + timedelta(days=days), retention_days=days)
        figures.purge_s = time.perf_counter() - started
    figures.purged_rows = sum(purged.get(table.name, 0) for table in STATS_TABLES)
    figures.purge_ratio = figures.purge_s / figures.delete_s
    print(
        f"baseline: plain DELETE of rows before {cutoff:%Y-%m-%d %H:%M}: {figures.delete_s:.2f} s, "
        f"{deleted:,} rows"
    )
    print(
        f"RetentionStore.purge (retention {days} days, same cutoff): {figures.purge_s:.2f} s, "
        f"{figures.purged_rows:,} runtime-stats rows {purged}; ratio {figures.purge_ratio:.2f}x"
    )
    if figures.purged_rows != deleted:
        print(
            f"  WARNING: purge deleted {figures.purged_rows:,} runtime-stats rows, "
            f"the plain DELETE {deleted:,}"
        )


# -- storage --------------------------------------------------------------------------------------


def projection_gb(settings: Settings, rows_per_query_interval: float, fine: float, rollup: float) -> float:
    """Runtime stats of the PROJECTION fleet: fine rows for stats_fine_days, hourly rollups up to
    stats_hourly_days, daily rollups for the rest of the days; GB of 10^9 bytes."""
    days = PROJECTION["days"]
    fine_days = min(settings.stats_fine_days, days)
    hourly_days = min(settings.stats_hourly_days, days) - fine_days
    daily_days = days - fine_days - hourly_days
    per_query = rows_per_query_interval * (
        fine_days * PROJECTION["intervals_per_day"] * fine + (hourly_days * 24 + daily_days) * rollup
    )
    return PROJECTION["targets"] * PROJECTION["queries"] * per_query / 1e9


# -- the run --------------------------------------------------------------------------------------


def run(server: PostgresServer, size: Size, args: argparse.Namespace, settings: Settings) -> Figures:
    figures = Figures()
    window_end = START + timedelta(hours=size.hours)
    window_start = window_end - timedelta(hours=1)
    window = Window(window_start - timedelta(days=settings.baseline_days), window_start, window_end)
    load_and_roll_up(server, size, args, settings, figures)
    with tempfile.TemporaryDirectory(prefix="planmon-fleet-home-") as home:
        measure_analysis(
            server,
            window,
            figures,
            memory_cap=int(args.memory_cap_gb * 2**30),
            home=Path(home),
            diagnostics=Diagnostics(args.profile, args.explain_ms, args.pgoptions),
        )
    measure_purge(server, settings, figures)
    report_storage(size, settings, figures)
    return figures


def load_and_roll_up(
    server: PostgresServer,
    size: Size,
    args: argparse.Namespace,
    settings: Settings,
    figures: Figures,
) -> None:
    """The repository as the store keeps it: schema, queries and plans, then a day of runtime stats
    at a time, each day followed by the maintenance DAG's roll-up and a VACUUM (ANALYZE) standing in
    for autovacuum, so runtime_stats reuses the space the roll-up freed as it does in production."""
    create_database(server, DATABASE)
    with Repository(create_repository_engine(make_url(repository_url(server)))) as repository:
        revision = repository.init_schema()
        print(
            f"repository schema at revision {revision}; loading {size.targets} targets x "
            f"{size.queries:,} queries x {size.hours} hourly intervals"
        )
        started = time.perf_counter()
        targets, positives = store_fleet(repository, size, seed=args.seed, positive_share=args.positive_share)
        figures.load_s = time.perf_counter() - started
        print(f"  queries and plans stored in {figures.load_s:.1f} s ({positives:,} regressing queries)")
        with psycopg.connect(server.dsn(DATABASE), autocommit=True) as connection:
            # the generated rows reference what was stored: no per-row FK triggers while loading
            connection.execute("SET session_replication_role = replica")
            days = DailyLoad(repository, connection, server, targets, size, settings, figures, args.load_via)
            for first_hour in range(0, size.hours, 24):
                days.day(first_hour)
    figures.rollup_bytes_per_row = bytes_per_row(server, runtime_stats_rollup)
    print(
        f"loaded {figures.rows:,} runtime-stats rows in {figures.load_s:.1f} s; StatsStore.roll_up "
        f"(fine {settings.stats_fine_days} d, hourly {settings.stats_hourly_days} d) after each day: "
        f"{figures.rollup_s:.1f} s in all, {figures.rolled_rows:,} rows rolled up"
    )


@dataclass
class DailyLoad:
    """Loads the fleet's runtime stats one day at a time, each day followed by the roll-up."""

    repository: Repository
    connection: psycopg.Connection[Any]
    server: PostgresServer
    targets: Sequence[FleetTarget]
    size: Size
    settings: Settings
    figures: Figures
    via: str

    def day(self, first_hour: int) -> None:
        start = START + timedelta(hours=first_hour)
        end = START + timedelta(hours=min(first_hour + 24, self.size.hours))
        started = time.perf_counter()
        rows = load_interval_range(self.repository, self.connection, self.targets, start, end, via=self.via)
        loaded = time.perf_counter() - started
        self.figures.rows += rows
        self.figures.load_s += loaded
        if end == START + timedelta(hours=self.size.hours):  # densest: the last day's rows are all in
            self.figures.stats_bytes_per_row = bytes_per_row(self.server, runtime_stats)
        started = time.perf_counter()
        rolled = StatsStore(self.repository).roll_up(
            now=end, fine_days=self.settings.stats_fine_days, hourly_days=self.settings.stats_hourly_days
        )
        rolled_up = time.perf_counter() - started
        self.figures.rollup_s += rolled_up
        self.figures.rolled_rows += rolled.hour_rows_replaced + rolled.day_rows_replaced
        vacuumed = vacuum_analyze(self.server)
        print(
            f"  {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {rows:,} rows in {loaded:.1f} s; roll_up "
            f"{rolled_up:.1f} s {rolled.as_dict()}; VACUUM (ANALYZE) {vacuumed:.1f} s",
            flush=True,
        )


def report_storage(size: Size, settings: Settings, figures: Figures) -> None:
    per_query_interval = figures.rows / (size.targets * size.queries * size.hours)
    figures.projection_gb = projection_gb(
        settings, per_query_interval, figures.stats_bytes_per_row, figures.rollup_bytes_per_row
    )
    print(
        f"bytes per row: runtime_stats {figures.stats_bytes_per_row:.0f}, runtime_stats_rollup "
        f"{figures.rollup_bytes_per_row:.0f} (table + indexes); "
        f"{per_query_interval:.2f} rows per query and interval"
    )
    fleet = PROJECTION
    print(
        f"projection, {fleet['targets']} targets x {fleet['queries']:,} queries x {fleet['days']} days "
        f"at 15-minute intervals: {figures.projection_gb:.1f} GB of runtime stats"
    )


def check_goals(figures: Figures) -> None:
    checks = {
        "analysis_ratio": figures.analysis_ratio <= GOAL_ANALYSIS_RATIO,
        "peak_rss": figures.peak_rss_mb * 2**20 < GOAL_PEAK_BYTES,
        "purge_ratio": figures.purge_ratio <= GOAL_PURGE_RATIO,
        "projection": figures.projection_gb < GOAL_PROJECTION_GB,
    }
    figures.missed += [name for name, met in checks.items() if not met and name not in figures.missed]
    print(
        f"goals: analysis <= {GOAL_ANALYSIS_RATIO:g}x the aggregate "
        f"({'met' if checks['analysis_ratio'] else 'NOT met'}), peak RSS < {GOAL_PEAK_BYTES / 2**30:g} GB "
        f"({'met' if checks['peak_rss'] else 'NOT met'}), purge <= {GOAL_PURGE_RATIO:g}x the DELETE "
        f"({'met' if checks['purge_ratio'] else 'NOT met'}), projection < {GOAL_PROJECTION_GB:g} GB "
        f"({'met' if checks['projection'] else 'NOT met'})"
    )


def load_average() -> str:
    with contextlib.suppress(OSError):
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
    return "load average unknown"


@contextlib.contextmanager
def _server() -> Iterator[PostgresServer]:
    with postgres_server(SERVER_SETTINGS) as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 targets x 100 queries x 72 h (for tests)")
    parser.add_argument(
        "--no-goals", action="store_true", help="report only; exit 0 even when a goal is missed"
    )
    parser.add_argument("--targets", type=int)
    parser.add_argument("--queries", type=int, help="per target")
    parser.add_argument("--hours", type=int, help="hourly intervals loaded (the last one is analysed)")
    parser.add_argument("--positive-share", type=float, default=0.03, help="share of regressing queries")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--memory-cap-gb", type=float, default=8.0, help="address-space cap of the analysis")
    parser.add_argument(
        "--load-via",
        choices=("copy", "repository"),
        default="copy",
        help="runtime stats by binary COPY (default) or through CollectionStore.upsert_runtime_stats",
    )
    parser.add_argument("--profile", type=Path, help="also run the analysis under cProfile into this file")
    parser.add_argument(
        "--pgoptions",
        help="also re-run the aggregate and the analysis with these libpq PGOPTIONS, e.g. '-c jit=off'",
    )
    parser.add_argument(
        "--explain-ms",
        type=float,
        help="also run the analysis under auto_explain; print the plans of its statements over this many ms",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    size = Size(args.targets or base.targets, args.queries or base.queries, args.hours or base.hours)
    if size.hours < 2:
        parser.error("--hours must be at least 2: one analysed hour and a baseline before it")
    settings = load_settings()
    print(f"analyze_fleet: {load_average()} at start")
    with _server() as server:
        figures = run(server, size, args, settings)
    print(f"analyze_fleet: {load_average()} at the end")
    check_goals(figures)
    print(figures.summary())
    return 0 if args.no_goals or not figures.missed else 1


if __name__ == "__main__":
    sys.exit(main())
