"""Runtime stats as analysis reads them, and their rollups as they age.

Analysis never ships the baseline window's rows: :meth:`StatsStore.baseline_sums` sums them per
plan with one ``GROUP BY`` over the ``(target_id, interval_start)`` index range (and per plan and
hour-of-day bucket over the ranges of the hours the window covers), and only the analysed window is
read row by row (:meth:`StatsStore.window_rows`). The sums are the detector's
(``planmon.model.BASELINE_MOMENT_COLUMNS`` per plan, ``BASELINE_BUCKET_COLUMNS`` per plan and
bucket) and they add up across grains, so rolled-up history gives the same baseline as the rows it
replaced.

Rollups (:meth:`StatsStore.roll_up`): runtime stats rows older than ``stats_fine_days`` are pooled
into one row per plan, hour and execution type, and hourly rows older than ``stats_hourly_days``
into days, in ``runtime_stats_rollup``. Each bucket is rolled in one transaction that pools the
bucket's finer rows together with any rollup row already there (rows that arrived late), replaces
that rollup row and deletes the finer rows: a retry, or a second run, changes nothing, and every
moment of history lives in exactly one grain.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from planmon.model import BASELINE_BUCKET_COLUMNS, BASELINE_MOMENT_COLUMNS, OTHER_HOURS_BUCKET
from planmon.store import partitions
from planmon.store.repository import RepositoryView, as_utc_naive
from planmon.store.schema import runtime_stats, runtime_stats_rollup
from planmon.store.upsert import upsert

log = logging.getLogger(__name__)

GRAIN_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
KEY_COLUMNS = ("target_id", "plan_id", "query_id", "execution_type")
ROLLUP_KEY = tuple(c.name for c in runtime_stats_rollup.primary_key.columns)
# runtime_stats' columns (the rollup table has them all), in table order
SHARED_COLUMNS = tuple(c.name for c in runtime_stats.columns if c.name in runtime_stats_rollup.c)
BASELINE_WORK_MEM = "64MB"  # PostgreSQL, for the baseline's GROUP BY only (see _for_the_baseline_sums)


@dataclass(frozen=True, slots=True)
class RollupSummary:
    """What one roll-up pass did: buckets written per grain and the finer rows they replaced."""

    hour_buckets: int = 0
    hour_rows_replaced: int = 0
    day_buckets: int = 0
    day_rows_replaced: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "hour_buckets": self.hour_buckets,
            "hour_rows_replaced": self.hour_rows_replaced,
            "day_buckets": self.day_buckets,
            "day_rows_replaced": self.day_rows_replaced,
        }


@dataclass(frozen=True, slots=True)
class BaselineSums:
    """The baseline window summed where the data is: per plan (``BASELINE_MOMENT_COLUMNS``) and per
    plan and hour-of-day bucket (``BASELINE_BUCKET_COLUMNS``), what ``detect``'s ``baseline`` and
    ``baseline_buckets`` take."""

    moments: pd.DataFrame
    buckets: pd.DataFrame


class StatsStore(RepositoryView):
    """Runtime stats of every grain: the analysis reads and the roll-up."""

    # -- reads -------------------------------------------------------------------------------------

    def baseline_sums(
        self,
        start: datetime,
        end: datetime,
        *,
        target_ids: Sequence[int],
        hours: Collection[int] | None = None,
    ) -> BaselineSums:
        """The baseline's sums over rows of every grain starting in [start, end), computed by the
        repository: per plan, the detector's moments (``BASELINE_MOMENT_COLUMNS``, one ``GROUP BY``
        over the index range), and per plan and hour-of-day bucket the day-aware baseline's
        (``BASELINE_BUCKET_COLUMNS``).

        ``hours``: the hours of day (UTC) the analysed window covers. The buckets then read only the
        rows of those hours (one index range per baseline day and hour: an hourly analysis reads a
        24th of the baseline again), and every other hour is one bucket, ``OTHER_HOURS_BUCKET``: the
        plan's moments less its window-hour buckets. None: every row is read into its own bucket.
        Daily rollups have no hour of day: they count in the moments, so in the other hours."""
        start, end = as_utc_naive(start), as_utc_naive(end)
        moments = self._baseline_moments(start, end, target_ids=target_ids)
        if hours is not None and not hours:
            return BaselineSums(moments, _other_hours(_empty_buckets(), moments))
        source = _all_grains(
            start, end, target_ids=target_ids, ranges=_hour_ranges(start, end, hours), hourly_or_finer=True
        ).subquery("rows")
        bucket = _hour_bucket(source, dialect=self.engine.dialect.name)
        sums = {column.name: column for column in _moment_sums(source)}  # the moments' own sums
        picked = [sums[name] for name in (*BASELINE_BUCKET_COLUMNS[:3], "n", "s1", "sm2", "intervals")]
        statement = select(*picked, bucket).group_by(
            source.c.target_id, source.c.query_id, source.c.plan_id, literal_column("bucket")
        )
        names = [*BASELINE_BUCKET_COLUMNS[:3], "n", "s1", "sm2", "rows", "bucket"]
        with (
            self._errors("summing the baseline's runtime stats by hour of day"),
            self.engine.connect() as connection,
        ):
            _for_the_baseline_sums(connection)
            buckets = _columns(connection.execute(statement).all(), names, ints=(*names[:3], "bucket"))
        buckets = buckets[list(BASELINE_BUCKET_COLUMNS)]
        return BaselineSums(moments, buckets if hours is None else _other_hours(buckets, moments))

    def _baseline_moments(self, start: datetime, end: datetime, *, target_ids: Sequence[int]) -> pd.DataFrame:
        source = _all_grains(start, end, target_ids=target_ids).subquery("rows")
        statement = select(*_moment_sums(source)).group_by(
            source.c.target_id, source.c.query_id, source.c.plan_id
        )
        with self._errors("summing the baseline's runtime stats"), self.engine.connect() as connection:
            _for_the_baseline_sums(connection)
            rows = connection.execute(statement).all()
        names = list(BASELINE_MOMENT_COLUMNS)
        return _columns(rows, names, ints=names[:3])

    def baseline_moments(self, start: datetime, end: datetime, *, target_ids: Sequence[int]) -> pd.DataFrame:
        """Per (target, query, plan): the detector's sums (``baseline_sums``' moments)."""
        return self._baseline_moments(as_utc_naive(start), as_utc_naive(end), target_ids=target_ids)

    def baseline_buckets(
        self,
        start: datetime,
        end: datetime,
        *,
        target_ids: Sequence[int],
        hours: Collection[int] | None = None,
    ) -> pd.DataFrame:
        """Per (target, query, plan, hour-of-day bucket): the day-aware baseline's sums
        (``baseline_sums``' buckets)."""
        return self.baseline_sums(start, end, target_ids=target_ids, hours=hours).buckets

    def window_rows(
        self,
        start: datetime,
        end: datetime,
        *,
        target_ids: Sequence[int],
        query_ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Rows of every grain starting in [start, end), runtime_stats' columns, in the
        order of the ``(target_id, interval_start)`` index. ``query_ids`` narrows to those queries."""
        source = _all_grains(
            as_utc_naive(start), as_utc_naive(end), target_ids=target_ids, query_ids=query_ids
        ).subquery("rows")
        statement = select(*(source.c[name] for name in SHARED_COLUMNS)).order_by(
            source.c.target_id, source.c.interval_start, source.c.plan_id, source.c.execution_type
        )
        with self._errors("reading runtime stats"), self.engine.connect() as connection:
            _without_jit(connection)
            frame = pd.read_sql(statement, connection)
        return frame

    # -- roll-up -----------------------------------------------------------------------------------

    def roll_up(self, *, now: datetime, fine_days: int, hourly_days: int) -> RollupSummary:
        """Pool rows older than ``fine_days`` into hours and hourly rows older than ``hourly_days``
        into days (see the module docstring); idempotent."""
        if hourly_days < fine_days:
            raise ValueError(f"hourly_days ({hourly_days}) must not be shorter than fine_days ({fine_days})")
        moment = as_utc_naive(now)
        hour_cutoff = (moment - timedelta(days=fine_days)).replace(minute=0, second=0, microsecond=0)
        day_cutoff = (moment - timedelta(days=hourly_days)).replace(hour=0, minute=0, second=0, microsecond=0)
        hours, hour_rows = self._roll(runtime_stats, None, "hour", hour_cutoff)
        days, day_rows = self._roll(runtime_stats_rollup, "hour", "day", day_cutoff)
        summary = RollupSummary(hours, hour_rows, days, day_rows)
        log.info("rolled up runtime stats: %s", summary.as_dict())
        return summary

    def _roll(self, table: Any, from_grain: str | None, grain: str, cutoff: datetime) -> tuple[int, int]:
        """Roll every bucket of ``grain`` that ends by ``cutoff`` and still has finer rows."""
        buckets = rows_replaced = 0
        by_day: dict[datetime, list[datetime]] = {}
        for bucket in self._buckets_to_roll(table, from_grain, grain, cutoff):
            by_day.setdefault(_bucket_start(bucket, "day"), []).append(bucket)
        for day, day_buckets in by_day.items():  # one transaction per day: few commits, short locks
            with self._errors(f"rolling up runtime stats into {grain}s"), self.engine.begin() as connection:
                _without_jit(connection)
                whole = _whole_day_partition(connection, table, day, cutoff)
                if whole is not None:
                    rows_replaced += _roll_day_partition(connection, whole, from_grain, grain, day)
                else:
                    for bucket in day_buckets:
                        rows_replaced += _roll_bucket(connection, table, from_grain, grain, bucket)
            buckets += len(day_buckets)
        return buckets, rows_replaced

    def _buckets_to_roll(
        self, table: Any, from_grain: str | None, grain: str, cutoff: datetime
    ) -> list[datetime]:
        """Starts of the ``grain`` buckets before ``cutoff`` holding finer rows, oldest first.

        Found by index range probes (``MIN(interval_start)`` past the previous bucket), never by
        reading the rows themselves.
        """
        step = GRAIN_STEP[grain]
        finer = _grain_condition(table, from_grain)
        after: datetime | None = None
        buckets: list[datetime] = []
        with self._errors("finding runtime stats to roll up"), self.engine.connect() as connection:
            while True:
                conditions = [table.c.interval_start < cutoff, finer]
                if after is not None:
                    conditions.append(table.c.interval_start >= after)
                oldest = connection.execute(
                    select(func.min(table.c.interval_start)).where(and_(*conditions))
                ).scalar()
                if oldest is None:
                    return buckets
                bucket = _bucket_start(oldest, grain)
                if bucket + step > cutoff:
                    return buckets
                buckets.append(bucket)
                after = bucket + step


def _without_jit(connection: Connection) -> None:
    """PostgreSQL: no JIT compilation for the rest of this transaction.

    The analysis' reads and the roll-up are cheap per row and wide in expressions (a dozen
    conditional sums, two dozen pooled columns): their estimated cost crosses ``jit_above_cost``,
    and PostgreSQL then spends longer compiling them than running them (2.8 s of a 2.9 s baseline
    sum, measured by bench/analyze_fleet.py with auto_explain).
    ``SET LOCAL`` ends with the transaction, so the pooled connection goes back unchanged.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL jit = off")


def _for_the_baseline_sums(connection: Connection) -> None:
    """PostgreSQL: no JIT, and room to hash the baseline's groups, for this transaction.

    The planner overestimates the groups of a GROUP BY over a UNION ALL (about 16x on the fleet
    bench) and, at a small ``work_mem``, sorts every row to disk instead of hashing: 2.0 s against
    1.2 s for one batch of 10 targets. ``BASELINE_WORK_MEM`` covers the groups of a batch many times
    over (about 200 bytes each); a hash aggregate that outgrows it spills to disk, never fails.
    """
    _without_jit(connection)
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{BASELINE_WORK_MEM}'")


def _bucket_start(moment: datetime, grain: str) -> datetime:
    start = moment.replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if grain == "day" else start


def _grain_condition(table: Any, grain: str | None) -> ColumnElement[bool]:
    return table.c.grain == grain if grain is not None else literal(True)


def _whole_day_partition(connection: Connection, table: Any, day: datetime, cutoff: datetime) -> str | None:
    """The quoted name of ``table``'s partition of ``day`` when the whole day is rolled now
    (PostgreSQL, runtime_stats, the day ends by the cutoff), else None."""
    if table is not runtime_stats or day + GRAIN_STEP["day"] > cutoff:
        return None
    found = partitions.partitions(connection, runtime_stats)
    mine = [p for p in found or () if p.lower == day and p.upper == day + GRAIN_STEP["day"]]
    if not mine:
        return None
    preparer = connection.dialect.identifier_preparer
    return f"{preparer.quote_schema(mine[0].schema)}.{preparer.quote(mine[0].name)}"


def _roll_day_partition(
    connection: Connection, partition: str, from_grain: str | None, grain: str, day: datetime
) -> int:
    """A whole day of runtime_stats in its own partition: pool every bucket, then empty the
    partition with TRUNCATE (its files go at once: no dead rows for VACUUM, no bloat left behind
    until retention drops it) instead of deleting row by row; the rows replaced.

    The partition is locked SHARE first, so no late row can arrive between pooling and emptying;
    the TRUNCATE waits at most ``partitions.LOCK_TIMEOUT_MS`` for readers, and when it cannot have
    its lock the rows are deleted bucket by bucket as everywhere else.
    """
    connection.execute(text(f"LOCK TABLE {partition} IN SHARE MODE"))
    rows = int(connection.execute(text(f"SELECT count(*) FROM {partition}")).scalar_one())  # noqa: S608
    # every hour of the day, not only those found before the lock: a row that arrived in between
    # is pooled too, never emptied away unrolled
    step = GRAIN_STEP[grain]
    buckets = [day + step * n for n in range(GRAIN_STEP["day"] // step)]
    for bucket in buckets:
        _roll_bucket(connection, runtime_stats, from_grain, grain, bucket, delete_rolled=False)
    try:
        with connection.begin_nested():
            connection.execute(text(f"SET LOCAL lock_timeout = {partitions.LOCK_TIMEOUT_MS}"))
            connection.execute(text(f"TRUNCATE {partition}"))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        log.info("TRUNCATE %s gave way to a reader: deleting its rolled rows instead", partition)
        for bucket in buckets:
            connection.execute(delete(runtime_stats).where(_in_bucket(runtime_stats, None, grain, bucket)))
    return rows


def _in_bucket(table: Any, from_grain: str | None, grain: str, bucket: datetime) -> ColumnElement[bool]:
    end = bucket + GRAIN_STEP[grain]
    return and_(
        table.c.interval_start >= bucket, table.c.interval_start < end, _grain_condition(table, from_grain)
    )


def _roll_bucket(
    connection: Connection,
    table: Any,
    from_grain: str | None,
    grain: str,
    bucket: datetime,
    *,
    delete_rolled: bool = True,
) -> int:
    """One bucket: pool its finer rows and any rollup row already there, replace, and (unless the
    caller empties the whole partition) delete the finer rows; the number deleted."""
    end = bucket + GRAIN_STEP[grain]
    in_bucket = _in_bucket(table, from_grain, grain, bucket)
    existing = runtime_stats_rollup
    existing_in_bucket = and_(
        existing.c.grain == grain, existing.c.interval_start >= bucket, existing.c.interval_start < end
    )
    late = connection.execute(select(literal(1)).where(existing_in_bucket).limit(1)).first() is not None
    rows_to_pool: Any = _pool_source(table, in_bucket, rollup=from_grain is not None)
    if late:  # rows that arrived after the bucket was rolled join its rollup row, which they replace
        rows_to_pool = union_all(rows_to_pool, _pool_source(existing, existing_in_bucket, rollup=True))
    sources = rows_to_pool.subquery("sources")
    columns = _pooled_columns(sources, grain=grain, bucket=bucket, end=end)
    pooled = select(*columns).group_by(*(sources.c[name] for name in KEY_COLUMNS))
    if late:  # the pooled rows cover every key already there: an upsert replaces them
        rows = [dict(row._mapping) for row in connection.execute(pooled)]
        upsert(connection, runtime_stats_rollup, rows, key=ROLLUP_KEY)
    else:  # the usual case: pooled on the server, nothing shipped to the client
        connection.execute(insert(runtime_stats_rollup).from_select([c.name for c in columns], pooled))
    if not delete_rolled:
        return 0
    replaced = connection.execute(delete(table).where(in_bucket)).rowcount
    return int(replaced or 0)


def _metric(source: Any) -> ColumnElement[Any]:
    """The detector's metric of a row: CPU where the engine reports it, else duration."""
    return func.coalesce(source.c.cpu_us_mean, source.c.duration_us_mean)


def _pool_source(table: Any, condition: ColumnElement[bool], *, rollup: bool) -> Any:
    """A table's rows in one shape for pooling: value columns, rows held, squared metric mean."""
    metric = _metric(table)
    return select(
        *(table.c[name] for name in SHARED_COLUMNS),
        (table.c.source_rows if rollup else literal(1)).label("source_rows"),
        (table.c.metric_mean_sq if rollup else metric * metric).label("metric_mean_sq"),
    ).where(condition)


def _all_grains(
    start: datetime,
    end: datetime,
    *,
    target_ids: Sequence[int],
    query_ids: Sequence[int] | None = None,
    ranges: Sequence[tuple[datetime, datetime]] | None = None,
    hourly_or_finer: bool = False,
) -> Any:
    """Rows of runtime_stats and of every rollup grain (``hourly_or_finer``: of the hourly one only)
    starting in [start, end), in the pooling shape (``_pool_source``); ``ranges``: only those
    starting in one of these [lo, hi) (index ranges)."""

    def condition(table: Any) -> ColumnElement[bool]:
        terms = [
            table.c.target_id.in_(list(target_ids)),
            table.c.interval_start >= start,
            table.c.interval_start < end,
        ]
        if query_ids is not None:
            terms.append(table.c.query_id.in_(list(query_ids)))
        if ranges is not None:
            terms.append(
                or_(
                    *(
                        and_(table.c.interval_start >= low, table.c.interval_start < high)
                        for low, high in ranges
                    )
                )
                if ranges
                else literal(False)
            )
        if hourly_or_finer and table is runtime_stats_rollup:
            terms.append(table.c.grain == "hour")
        return and_(*terms)

    return union_all(
        _pool_source(runtime_stats, condition(runtime_stats), rollup=False),
        _pool_source(runtime_stats_rollup, condition(runtime_stats_rollup), rollup=True),
    )


def _columns(rows: Sequence[Any], names: Sequence[str], *, ints: Sequence[str]) -> pd.DataFrame:
    """A frame of result rows built column by column (a DataFrame of Row objects infers every
    value's type: a fifth of the baseline's read); ``ints`` are int64, the rest float (NULL: NaN)."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pd.DataFrame(
        {name: np.array(column, dtype=np.int64 if name in ints else float)
         for name, column in zip(names, values, strict=True)}
    )  # fmt: skip


def _empty_buckets() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="float64") for name in BASELINE_BUCKET_COLUMNS})


def _other_hours(buckets: pd.DataFrame, moments: pd.DataFrame) -> pd.DataFrame:
    """``buckets`` and, per plan, one OTHER_HOURS_BUCKET row: its moments less its buckets (every
    hour the window does not cover, and the daily rollups)."""
    keys = list(BASELINE_BUCKET_COLUMNS[:3])
    total = moments[[*keys, "n", "s1", "sm2", "intervals"]].rename(columns={"intervals": "rows"})
    covered = buckets.groupby(keys, as_index=False)[["n", "s1", "sm2", "rows"]].sum()
    other = total.merge(covered, on=keys, how="left", suffixes=("", "_covered")).fillna(0.0)
    for name in ("n", "s1", "sm2", "rows"):
        other[name] = (other[name] - other[f"{name}_covered"]).clip(lower=0.0)
    other = other[(other["n"] > 0) | (other["rows"] > 0)].assign(bucket=OTHER_HOURS_BUCKET)
    parts = [frame[list(BASELINE_BUCKET_COLUMNS)] for frame in (buckets, other) if len(frame)]
    if not parts:
        return _empty_buckets()
    combined = pd.concat(parts, ignore_index=True)
    return combined.astype({name: "int64" for name in (*keys, "bucket")})


def _hour_ranges(
    start: datetime, end: datetime, hours: Collection[int] | None
) -> list[tuple[datetime, datetime]] | None:
    """[lo, hi) of every hour of day in ``hours`` on every day of [start, end), clipped to it (None:
    no narrowing, every hour)."""
    if hours is None:
        return None
    ranges = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        for hour in sorted(hours):
            low, high = max(day + timedelta(hours=hour), start), min(day + timedelta(hours=hour + 1), end)
            if low < high:
                ranges.append((low, high))
        day += timedelta(days=1)
    return ranges


def _hour_bucket(source: Any, *, dialect: str) -> ColumnElement[Any]:
    """``planmon.analysis.onset.hour_buckets`` in SQL: hour of day (UTC), +24 on Saturdays and
    Sundays (day of week 0 is Sunday, 6 Saturday in PostgreSQL and SQLite alike).

    PostgreSQL: ``date_part`` (double precision), not ``EXTRACT`` (numeric since 14, slower over
    the baseline's rows); SQLite: ``EXTRACT`` (SQLAlchemy renders ``strftime``)."""
    start = source.c.interval_start
    weekday: ColumnElement[Any]
    if dialect == "postgresql":
        hour, weekday = cast(func.date_part("hour", start), Integer), func.date_part("dow", start)
    else:
        hour, weekday = cast(extract("hour", start), Integer), extract("dow", start)
    return (hour + case((weekday.in_([0, 6]), 24), else_=0)).label("bucket")


def _moment_sums(source: Any) -> list[ColumnElement[Any]]:
    """The detector's per-plan sums (BASELINE_MOMENT_COLUMNS) over pooled-shape rows.

    Mirrors ``planmon.analysis.detect._plan_moments``: n counts regular executions with a metric;
    a rollup row stands for ``source_rows`` intervals and carries its squared-mean term.
    """
    metric = _metric(source)
    deviation = func.coalesce(
        case((source.c.cpu_us_mean.is_not(None), source.c.cpu_us_stdev), else_=source.c.duration_us_stdev),
        0.0,
    )
    regular = or_(source.c.execution_type == 0, source.c.execution_type.is_(None))
    counted = and_(regular, metric.is_not(None), source.c.executions > 0)
    n = cast(source.c.executions, Float)

    def total(expression: ColumnElement[Any], label: str, *, otherwise: Any = 0.0) -> ColumnElement[Any]:
        return func.sum(case((counted, expression), else_=otherwise)).label(label)

    return [
        source.c.target_id,
        source.c.query_id,
        source.c.plan_id,
        total(n, "n"),
        total(n * metric, "s1"),
        total(n * (deviation * deviation + metric * metric), "s2"),
        total(n * source.c.metric_mean_sq, "sm2"),
        total(cast(source.c.source_rows, Float), "intervals"),
        func.sum(case((regular, cast(func.coalesce(source.c.errors, 0), Float)), else_=n)).label("failed"),
        func.sum(n).label("executions"),
        func.sum(
            case((and_(counted, source.c.logical_reads_mean.is_not(None)), n * source.c.logical_reads_mean))
        ).label("r1"),
        func.sum(
            case((and_(counted, source.c.rows_examined_mean.is_not(None)), n * source.c.rows_examined_mean))
        ).label("x1"),
        total(
            case((source.c.cpu_us_mean.is_not(None), cast(source.c.source_rows, Float)), else_=0.0),
            "cpu_rows",
        ),
    ]


def _pooled_columns(sources: Any, *, grain: str, bucket: datetime, end: datetime) -> list[ColumnElement[Any]]:
    """runtime_stats_rollup's columns for one bucket, pooled from ``sources`` (see the schema)."""
    weight = cast(sources.c.executions, Float)
    pooled: dict[str, ColumnElement[Any]] = {
        "grain": literal(grain),
        "interval_start": literal(bucket),
        "interval_end": literal(end),
        "source_rows": func.sum(sources.c.source_rows),
        "metric_mean_sq": _weighted_mean(sources.c.metric_mean_sq, weight, _metric(sources)),
    }
    for name in SHARED_COLUMNS:
        column = sources.c[name]
        if name in KEY_COLUMNS or name in pooled:
            continue
        if name in ("executions", "errors"):
            pooled[name] = func.sum(column)
        elif name.endswith("_min"):
            pooled[name] = func.min(column)
        elif name.endswith("_max"):
            pooled[name] = func.max(column)
        elif name.endswith("_mean"):
            pooled[name] = _weighted_mean(column, weight, column)
        elif name.endswith("_stdev"):
            pooled[name] = _pooled_stdev(column, sources.c[name.removesuffix("_stdev") + "_mean"], weight)
        else:  # a new runtime_stats column must say how it pools
            raise NotImplementedError(f"runtime_stats column {name!r} has no pooling rule in store/stats.py")
    keys = [sources.c[name] for name in KEY_COLUMNS]
    return [*keys, *(expression.label(name) for name, expression in pooled.items())]


def _known_weight(weight: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.nullif(func.sum(case((value.is_not(None), weight))), 0.0)


def _weighted_mean(value: ColumnElement[Any], weight: ColumnElement[Any], known: ColumnElement[Any]) -> Any:
    return func.sum(weight * value) / _known_weight(weight, known)


def _pooled_stdev(stdev: ColumnElement[Any], mean: ColumnElement[Any], weight: ColumnElement[Any]) -> Any:
    """sqrt(sum(n (sd^2 + mean^2)) / N - pooled_mean^2), floored at 0 against rounding."""
    second = func.sum(weight * (func.coalesce(stdev, 0.0) * func.coalesce(stdev, 0.0) + mean * mean))
    known = _known_weight(weight, mean)
    pooled_mean = func.sum(weight * mean) / known
    variance = second / known - pooled_mean * pooled_mean
    return func.sqrt(case((variance > 0.0, variance), else_=0.0))
