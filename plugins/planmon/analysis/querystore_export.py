"""Offline Query Store exports: CSV files of the Query Store views read into the detector's frames.

A DBA who cannot deploy planmon next to a server exports five views (SSMS "Save Results As", bcp,
sqlcmd, Azure Data Studio) and runs ``planmon analyze --query-store-export DIR``: the same detector
that reads the repository reads these files. Each file is named after its view and has a header row
with the column names Microsoft documents; only the columns below are read, others are ignored.

Query Store keeps, for the interval still open, a flushed and an in-memory row per
(plan_id, runtime_stats_interval_id, execution_type) (documented for ``runtime_stats_id``): they are
merged here with execution-weighted means and pooled standard deviations, never by averaging averages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from planmon.analysis.frames import PLAN_COLUMNS, RUNTIME_STATS_COLUMNS
from planmon.errors import ConfigError, PlanParseError
from planmon.plans.hygiene import sniff_encoding
from planmon.plans.model import Plan, PlanStatement
from planmon.sql import MARKER
from planmon.store.repository import as_utc_naive

if TYPE_CHECKING:
    from planmon.config import Settings

logger = logging.getLogger(__name__)

EXPORT_TARGET = "query-store-export"  # the target name regressions from an export carry
EXPORT_TARGET_ID = 1  # one export is one database: one target
DEFAULT_WINDOW = timedelta(hours=24)
ERROR_EXECUTION_TYPES = (3, 4)  # 3 aborted by the client (e.g. a timeout), 4 aborted by an exception

_DOCS = "https://learn.microsoft.com/sql/relational-databases/system-catalog-views/"
_NULLS = ["", "NULL"]  # SSMS writes NULL; bcp and sqlcmd -s write an empty field
_DATETIME_HINT = (
    "write it as SQL Server does (2026-11-20 13:00:00.0000000 +00:00) or as ISO 8601 "
    "(2026-11-20T13:00:00Z); a time without an offset is taken as UTC"
)

# Column kinds: how a column is read and checked.
_INT, _FLOAT, _TEXT, _TIME, _BIT = "int", "float", "text", "time", "bit"
_READ_AS: dict[str, str] = {_INT: "Int64", _FLOAT: "float64", _TEXT: "str", _TIME: "str", _BIT: "str"}


@dataclass(frozen=True, slots=True)
class ViewFile:
    """One CSV file of an export: the view it holds, the columns planmon needs and may use."""

    file_name: str
    view: str
    doc_url: str
    required: Mapping[str, str]  # column -> kind
    optional: Mapping[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # required columns that may not be empty

    def kinds(self) -> dict[str, str]:
        return {**self.required, **self.optional}


# https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-transact-sql
RUNTIME_STATS_FILE = ViewFile(
    "query_store_runtime_stats.csv",
    "sys.query_store_runtime_stats",
    _DOCS + "sys-query-store-runtime-stats-transact-sql",
    required={
        "plan_id": _INT,
        "runtime_stats_interval_id": _INT,
        "execution_type": _INT,
        "count_executions": _INT,
        "avg_duration": _FLOAT,
        "stdev_duration": _FLOAT,
        "avg_cpu_time": _FLOAT,
        "stdev_cpu_time": _FLOAT,
        "avg_logical_io_reads": _FLOAT,
    },
    keys=("plan_id", "runtime_stats_interval_id", "execution_type", "count_executions"),
)
# https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-interval-transact-sql
INTERVAL_FILE = ViewFile(
    "query_store_runtime_stats_interval.csv",
    "sys.query_store_runtime_stats_interval",
    _DOCS + "sys-query-store-runtime-stats-interval-transact-sql",
    required={"runtime_stats_interval_id": _INT, "start_time": _TIME, "end_time": _TIME},
    keys=("runtime_stats_interval_id", "start_time", "end_time"),
)
# https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql
# query_plan may be left out (plans keep their identity by plan_id); plan_forcing_type(_desc) is missing
# from SQL Server 2016 exports, where every force is a user's; without the compile times a rise of
# force_failure_count cannot be seen in one export (see plans_for_window).
PLAN_FILE = ViewFile(
    "query_store_plan.csv",
    "sys.query_store_plan",
    _DOCS + "sys-query-store-plan-transact-sql",
    required={"plan_id": _INT, "query_id": _INT, "is_forced_plan": _BIT, "force_failure_count": _INT},
    optional={
        "query_plan": _TEXT,
        "plan_forcing_type": _INT,
        "plan_forcing_type_desc": _TEXT,
        "last_force_failure_reason_desc": _TEXT,
        "count_compiles": _INT,
        "initial_compile_start_time": _TIME,
        "last_compile_start_time": _TIME,
    },
    keys=("plan_id", "query_id"),
)
# https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-transact-sql
QUERY_FILE = ViewFile(
    "query_store_query.csv",
    "sys.query_store_query",
    _DOCS + "sys-query-store-query-transact-sql",
    required={"query_id": _INT, "query_text_id": _INT, "query_hash": _TEXT},
    keys=("query_id",),
)
# https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-text-transact-sql
QUERY_TEXT_FILE = ViewFile(
    "query_store_query_text.csv",
    "sys.query_store_query_text",
    _DOCS + "sys-query-store-query-text-transact-sql",
    required={"query_text_id": _INT, "query_sql_text": _TEXT},
    keys=("query_text_id",),
)
EXPORT_FILES: tuple[ViewFile, ...] = (
    RUNTIME_STATS_FILE,
    INTERVAL_FILE,
    PLAN_FILE,
    QUERY_FILE,
    QUERY_TEXT_FILE,
)

# Runtime stats metric -> (mean column, stdev column or None) of sys.query_store_runtime_stats.
_POOLED_METRICS: dict[str, tuple[str, str | None]] = {
    "cpu_us": ("avg_cpu_time", "stdev_cpu_time"),
    "duration_us": ("avg_duration", "stdev_duration"),
    "logical_reads": ("avg_logical_io_reads", None),
}
_RUNTIME_KEY = ["plan_id", "runtime_stats_interval_id", "execution_type"]
_FORCING_TYPES = {1: "MANUAL", 2: "AUTO"}  # plan_forcing_type; 0 is NONE


@dataclass(frozen=True, eq=False)
class QueryStoreExport:
    """One database's Query Store, read from an export directory, in the detector's frames.

    ``runtime_stats`` has RUNTIME_STATS_COLUMNS (one row per plan, interval and execution type, in-memory
    and flushed rows merged), ``plans`` PLAN_COLUMNS plus ``last_force_failure_reason``, ``queries``
    query_id / query_hash / query_text (literals stripped), ``intervals`` runtime_stats_interval_id /
    start_time / end_time, ``plan_compiles`` plan_id / query_id / count_compiles /
    initial_compile_start_time / last_compile_start_time (NaT where the export lacks them). Times are
    UTC without tzinfo.
    """

    directory: Path
    runtime_stats: pd.DataFrame
    plans: pd.DataFrame
    queries: pd.DataFrame
    intervals: pd.DataFrame
    plan_compiles: pd.DataFrame
    plan_bodies: Mapping[int, str] = field(default_factory=dict, repr=False)

    def plan_xml(self, plan_id: int) -> bytes | None:
        """The showplan XML of ``plan_id`` as exported (None when the export has no text for it)."""
        body = self.plan_bodies.get(int(plan_id))
        return None if body is None else body.encode("utf-8")

    def query_text(self, query_id: int) -> str | None:
        """The query's text with literals stripped, or None when the export has none."""
        match = self.queries.loc[self.queries["query_id"] == query_id, "query_text"]
        return None if match.empty or pd.isna(match.iloc[0]) else str(match.iloc[0])


# --- reading ------------------------------------------------------------------------------------------


def load_export(directory: Path) -> QueryStoreExport:
    """Read the five view files of a Query Store export in ``directory``.

    Raises ConfigError naming the file (and column, and row) for a missing file, a missing required
    column, a value that is not a number or a date and time, or an empty key.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            f"Query Store export directory {str(directory)!r} does not exist or is not a directory",
            hint="pass the directory holding " + ", ".join(view.file_name for view in EXPORT_FILES),
        )
    raw_stats = read_view(directory, RUNTIME_STATS_FILE)
    intervals = _intervals(read_view(directory, INTERVAL_FILE))
    raw_plans = read_view(directory, PLAN_FILE)
    raw_queries = read_view(directory, QUERY_FILE)
    raw_texts = read_view(directory, QUERY_TEXT_FILE)
    queries = _queries(raw_queries, raw_texts)
    plans, bodies = _plans(raw_plans)
    own = _planmon_query_ids(raw_texts, raw_queries)
    runtime_stats = _runtime_stats(raw_stats, intervals, plans, exclude_queries=own)
    logger.info(
        "query store export %s: %d runtime stats rows -> %d per plan/interval/execution type, "
        "%d plans (%d without a readable plan), %d queries, %d intervals",
        directory,
        len(raw_stats),
        len(runtime_stats),
        len(plans),
        int(plans["shape_hash"].isna().sum()),
        len(queries),
        len(intervals),
    )
    return QueryStoreExport(
        directory, runtime_stats, plans, queries, intervals, _plan_compiles(raw_plans), bodies
    )


def read_view(directory: Path, view: ViewFile) -> pd.DataFrame:
    """The columns planmon uses of one view file (names lower-cased), typed by kind; others are skipped."""
    path = directory / view.file_name
    if not path.is_file():
        raise ConfigError(
            f"the Query Store export in {str(directory)!r} has no {view.file_name} ({view.view})",
            hint=f"export every column of {view.view} and save the result with a header row as "
            f"{view.file_name} ({view.doc_url})",
        )
    encoding = _csv_encoding(path)
    header = _read_csv(path, view, encoding, nrows=0).columns
    names = {str(column): str(column).strip().lower() for column in header}
    missing = [column for column in view.required if column not in names.values()]
    if missing:
        raise ConfigError(
            f"{path}: required column(s) {', '.join(missing)} missing from the export of {view.view}",
            hint=f"export the view with SELECT * (extra columns are ignored) or add the column(s); "
            f"{view.file_name} needs {', '.join(view.required)} ({view.doc_url})",
        )
    kinds = view.kinds()
    wanted = [original for original, name in names.items() if name in kinds]
    dtypes = {original: _READ_AS[kinds[names[original]]] for original in wanted}
    try:
        frame = _read_csv(path, view, encoding, usecols=wanted, dtype=dtypes)
    except ValueError as exc:  # a value that does not fit its column's type: find and name it
        raise _bad_number(path, view, encoding, wanted=wanted, kinds=kinds, names=names) from exc
    frame = frame.rename(columns=names).loc[:, lambda f: ~f.columns.duplicated()]
    _require_values(frame, view, path)
    for column, kind in kinds.items():
        if column in frame.columns and kind == _TIME:
            frame[column] = parse_timestamps(frame[column], source=f"{path}: column {column!r}")
    return frame


def _read_csv(path: Path, view: ViewFile, encoding: str, **options: Any) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pd.read_csv(
            path,
            encoding=encoding,
            encoding_errors="replace",
            keep_default_na=False,
            na_values=_NULLS,
            **options,
        )
    except pd.errors.EmptyDataError as exc:
        raise ConfigError(
            f"{path} is empty", hint=f"export {view.view} with a header row ({view.doc_url})"
        ) from exc
    except pd.errors.ParserError as exc:
        raise ConfigError(
            f"{path} is not a readable CSV file ({exc})",
            hint="save the result as comma-separated values with a header row; quote fields that hold "
            "commas, quotes or line breaks (query text, plan XML)",
        ) from exc
    return frame


def _csv_encoding(path: Path) -> str:
    """UTF-16 when the file says so (bcp -w, some SSMS settings), otherwise UTF-8 with an optional BOM."""
    with path.open("rb") as handle:
        head = handle.read(200)
    encoding, bom_length = sniff_encoding(head)
    if encoding == "utf-8":
        return "utf-8-sig"
    return "utf-16" if bom_length else encoding


def _bad_number(
    path: Path,
    view: ViewFile,
    encoding: str,
    *,
    wanted: list[str],
    kinds: Mapping[str, str],
    names: Mapping[str, str],
) -> ConfigError:
    """The ConfigError for the first value that is not a number (re-read as text to find it)."""
    text = _read_csv(path, view, encoding, usecols=wanted, dtype=str).rename(columns=names)
    for column, kind in kinds.items():
        if kind not in (_INT, _FLOAT) or column not in text.columns:
            continue
        values = text[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if kind == _INT:
            bad |= numbers.notna() & (numbers != np.floor(numbers))
        if bad.any():
            position = int(np.argmax(bad.to_numpy()))
            return ConfigError(
                f"{path}: column {column!r}, row {position + 1}: {values.iloc[position]!r} is not "
                f"{'an integer' if kind == _INT else 'a number'}",
                hint="rows are counted from 1 after the header; export the view unchanged from SQL Server",
            )
    return ConfigError(f"{path}: a value does not fit its column", hint="export the view unchanged")


def _require_values(frame: pd.DataFrame, view: ViewFile, path: Path) -> None:
    for column in view.keys:
        empty = frame[column].isna()
        if empty.any():
            position = int(np.argmax(empty.to_numpy()))
            raise ConfigError(
                f"{path}: column {column!r}, row {position + 1} is empty",
                hint=f"{column} is never NULL in {view.view}: export the view unchanged "
                "(rows are counted from 1 after the header)",
            )


# --- date and time ------------------------------------------------------------------------------------

# datetimeoffset text has 7 fractional digits and a space before the offset; ISO 8601 parsers want at
# most 6 (microseconds; the 100 ns digit does not matter here) and no space.
_EXTRA_FRACTION = r"(\.\d{6})\d+"
_SPACE_BEFORE_OFFSET = r"\s+(?=[+-]\d{2}:?\d{2}$)"


def parse_timestamps(values: pd.Series, *, source: str) -> pd.Series:
    """Datetimeoffset or ISO 8601 text -> naive UTC timestamps; ConfigError naming ``source`` and the row."""
    text = values.astype("str").str.strip()
    text = text.str.replace(_EXTRA_FRACTION, r"\1", regex=True).str.replace(
        _SPACE_BEFORE_OFFSET, "", regex=True
    )
    parsed = pd.to_datetime(text.where(values.notna()), format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        position = int(np.argmax(bad.to_numpy()))
        raise ConfigError(
            f"{source}, row {position + 1}: cannot read {values.iloc[position]!r} as a date and time",
            hint=_DATETIME_HINT,
        )
    return parsed.dt.tz_convert(None)


def parse_timestamp(text: str) -> datetime:
    """One date and time given by a person (``--start``/``--end``) in either format, as naive UTC."""
    parsed = parse_timestamps(pd.Series([text], dtype="str"), source=f"date and time {text!r}")
    return as_utc_naive(parsed.iloc[0].to_pydatetime())


# --- frames -------------------------------------------------------------------------------------------


def _intervals(raw: pd.DataFrame) -> pd.DataFrame:
    intervals = raw.drop_duplicates("runtime_stats_interval_id", keep="last")
    return intervals.astype({"runtime_stats_interval_id": "int64"})[
        ["runtime_stats_interval_id", "start_time", "end_time"]
    ].reset_index(drop=True)


def pool_runtime_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Merge rows of one (plan, interval, execution type): execution-weighted means, pooled stdevs.

    mean = sum(n*avg)/sum(n); variance = sum(n*(stdev^2 + avg^2))/sum(n) - mean^2 (clipped at 0 against
    rounding). A row whose mean is NULL does not weigh in that metric; a NULL stdev counts as 0.
    """
    executions = raw["count_executions"].astype("float64")
    work = raw[_RUNTIME_KEY].astype("int64").assign(executions=executions)
    for metric, (mean_column, stdev_column) in _POOLED_METRICS.items():
        mean = raw[mean_column].astype("float64")
        weight = executions.where(mean.notna(), 0.0)
        work[f"{metric}_n"] = weight
        work[f"{metric}_sum"] = weight * mean.fillna(0.0)
        if stdev_column is not None:
            stdev = raw[stdev_column].astype("float64").fillna(0.0)
            work[f"{metric}_squares"] = weight * (stdev**2 + mean.fillna(0.0) ** 2)
    sums = work.groupby(_RUNTIME_KEY, as_index=False, sort=True).sum()
    pooled = sums[[*_RUNTIME_KEY, "executions"]].copy()
    for metric, (_, stdev_column) in _POOLED_METRICS.items():
        weight = sums[f"{metric}_n"].where(sums[f"{metric}_n"] > 0)
        mean = sums[f"{metric}_sum"] / weight
        pooled[f"{metric}_mean"] = mean
        if stdev_column is not None:
            variance = (sums[f"{metric}_squares"] / weight - mean**2).clip(lower=0.0)
            pooled[f"{metric}_stdev"] = np.sqrt(variance)
    pooled["executions"] = pooled["executions"].astype("int64")
    return pooled


def _runtime_stats(
    raw: pd.DataFrame, intervals: pd.DataFrame, plans: pd.DataFrame, *, exclude_queries: set[int]
) -> pd.DataFrame:
    """RUNTIME_STATS_COLUMNS from the runtime stats rows, their intervals and their plans' query ids."""
    pooled = pool_runtime_rows(raw)
    frame = pooled.merge(intervals, on="runtime_stats_interval_id", how="inner").merge(
        plans[["plan_id", "query_id"]], on="plan_id", how="inner"
    )
    if len(frame) < len(pooled):
        logger.warning(
            "query store export: %d runtime stats rows skipped: their interval or plan is not in the export",
            len(pooled) - len(frame),
        )
    frame = frame.loc[~frame["query_id"].isin(exclude_queries)]
    frame = frame.rename(columns={"start_time": "interval_start", "end_time": "interval_end"})
    frame["target_id"] = EXPORT_TARGET_ID
    frame["errors"] = frame["executions"].where(frame["execution_type"].isin(ERROR_EXECUTION_TYPES), 0)
    frame["rows_examined_mean"] = np.nan  # MySQL's rows examined; Query Store has no such counter
    frame = frame.sort_values(["interval_start", "plan_id", "execution_type"], kind="stable")
    return frame[list(RUNTIME_STATS_COLUMNS)].reset_index(drop=True)


def _plans(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """PLAN_COLUMNS (shape hash from the plan XML where it parses) and the plan bodies by plan_id."""
    raw = raw.drop_duplicates("plan_id", keep="last").reset_index(drop=True)
    plan_ids = raw["plan_id"].astype("int64")
    bodies: dict[int, str] = {}
    if "query_plan" in raw.columns:
        present = raw["query_plan"].notna()
        bodies = dict(zip(plan_ids[present].tolist(), raw.loc[present, "query_plan"].tolist(), strict=True))
    hashes = _shape_hashes(bodies)
    is_forced = _bits(raw["is_forced_plan"])
    plans = pd.DataFrame(
        {
            "plan_id": plan_ids,
            "query_id": raw["query_id"].astype("int64"),
            "target_id": EXPORT_TARGET_ID,
            "shape_hash": pd.Series([hashes.get(plan_id) for plan_id in plan_ids], dtype="object"),
            "is_forced": is_forced,
            "forcing_type": _forcing_types(raw, is_forced),
            "force_failure_count": raw["force_failure_count"].fillna(0).astype("int64"),
            "last_force_failure_reason": _none_text(raw.get("last_force_failure_reason_desc")),
        }
    )
    return plans[[*PLAN_COLUMNS, "last_force_failure_reason"]], bodies


def _plan_compiles(raw: pd.DataFrame) -> pd.DataFrame:
    """When each plan was compiled (first, last) and how often: the evidence of forcing failures."""
    raw = raw.drop_duplicates("plan_id", keep="last").reset_index(drop=True)
    missing_time = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    return pd.DataFrame(
        {
            "plan_id": raw["plan_id"].astype("int64"),
            "query_id": raw["query_id"].astype("int64"),
            "count_compiles": raw.get("count_compiles", pd.Series(pd.NA, index=raw.index, dtype="Int64")),
            "initial_compile_start_time": raw.get("initial_compile_start_time", missing_time),
            "last_compile_start_time": raw.get("last_compile_start_time", missing_time),
        }
    )


def _none_text(values: pd.Series | None) -> pd.Series | None:
    """Text with Query Store's NONE (and NULL) as None."""
    if values is None:
        return None
    text = values.astype("str").str.strip()
    return text.astype("object").where(values.notna() & (text.str.upper() != "NONE"), None)


def _bits(values: pd.Series) -> pd.Series:
    """bit columns as written by SSMS/bcp (1/0) or PowerShell (True/False)."""
    return values.astype("str").str.strip().str.lower().isin(["1", "true"]) & values.notna()


def _forcing_types(raw: pd.DataFrame, is_forced: pd.Series) -> pd.Series:
    """MANUAL / AUTO / None; exports without plan_forcing_type(_desc) predate automatic tuning's forces."""
    if "plan_forcing_type_desc" in raw.columns:
        desc = raw["plan_forcing_type_desc"].astype("str").str.strip().str.upper()
        forcing = desc.where(raw["plan_forcing_type_desc"].notna() & (desc != "NONE"))
    elif "plan_forcing_type" in raw.columns:
        forcing = raw["plan_forcing_type"].map(_FORCING_TYPES)
    else:
        forcing = is_forced.map({True: "MANUAL", False: None})
    return forcing.astype("object").where(forcing.notna(), None)


def _shape_hashes(bodies: Mapping[int, str]) -> dict[int, str]:
    """Shape hash per plan whose XML parses; each distinct body is parsed once."""
    by_body: dict[str, str | None] = {}
    unreadable = 0
    for body in set(bodies.values()):
        statement = main_statement(_parse(body))
        by_body[body] = None if statement is None else _hash(statement)
        unreadable += statement is None
    if unreadable:
        logger.warning(
            "query store export: %d plan bodies could not be read; those plans have no shape", unreadable
        )
    return {plan_id: shape for plan_id, body in bodies.items() if (shape := by_body[body]) is not None}


def _parse(body: str) -> Plan | None:
    from planmon.plans.parse import parse_plan

    try:
        return parse_plan(body, engine="sqlserver")
    except PlanParseError as exc:
        logger.debug("query store export: plan not readable: %s", exc)
        return None


def _hash(statement: PlanStatement) -> str:
    from planmon.plans.fingerprint import shape_hash

    return shape_hash(statement)


def main_statement(plan: Plan | None) -> PlanStatement | None:
    """The statement a Query Store plan is about: the first with an operator tree (else the first)."""
    if plan is None or not plan.statements:
        return None
    return next(
        (statement for statement in plan.statements if statement.root is not None), plan.statements[0]
    )


def _queries(raw_queries: pd.DataFrame, raw_texts: pd.DataFrame) -> pd.DataFrame:
    """query_id, query_hash, query_text (literals stripped: they may carry personal data)."""
    from planmon.plans.normalize import strip_literals

    texts = raw_texts.drop_duplicates("query_text_id", keep="last")
    queries = raw_queries.drop_duplicates("query_id", keep="last").merge(
        texts, on="query_text_id", how="left"
    )
    stripped = queries["query_sql_text"].map(strip_literals, na_action="ignore")
    return pd.DataFrame(
        {
            "query_id": queries["query_id"].astype("int64"),
            "query_hash": queries["query_hash"].astype("object").where(queries["query_hash"].notna(), None),
            "query_text": stripped.astype("object").where(stripped.notna(), None),
        }
    ).reset_index(drop=True)


def _planmon_query_ids(raw_texts: pd.DataFrame, raw_queries: pd.DataFrame) -> set[int]:
    """Queries planmon's own collector sent (they carry the marker): never analysed."""
    own_texts = raw_texts.loc[raw_texts["query_sql_text"].str.contains(MARKER, regex=False, na=False)]
    own = raw_queries.loc[raw_queries["query_text_id"].isin(own_texts["query_text_id"]), "query_id"]
    return {int(query_id) for query_id in own}


# --- analysis -----------------------------------------------------------------------------------------


def default_window(export: QueryStoreExport) -> tuple[datetime, datetime]:
    """The last 24 hours of the export: up to the latest interval end_time."""
    if export.intervals.empty:
        raise ConfigError(
            f"the Query Store export in {str(export.directory)!r} has no runtime stats intervals",
            hint="export sys.query_store_runtime_stats_interval with its rows (is Query Store collecting?)",
        )
    end = pd.Timestamp(export.intervals["end_time"].max()).to_pydatetime()
    return end - DEFAULT_WINDOW, end


def analysis_window(
    export: QueryStoreExport,
    *,
    start: datetime | None,
    end: datetime | None,
    baseline_start: datetime | None,
    settings: Settings,
) -> tuple[datetime, datetime, datetime]:
    """(baseline_start, window_start, window_end): defaults as in repository mode, checked in order."""
    export_end = default_window(export)[1]
    window_end = as_utc_naive(end) if end is not None else export_end
    window_start = as_utc_naive(start) if start is not None else window_end - DEFAULT_WINDOW
    if window_start >= window_end:
        raise ConfigError(
            f"the analysis window starts ({window_start:%Y-%m-%d %H:%M}) at or after it ends "
            f"({window_end:%Y-%m-%d %H:%M})",
            hint="pass --start before --end (both UTC unless they carry an offset)",
        )
    baseline = (
        as_utc_naive(baseline_start)
        if baseline_start is not None
        else window_start - timedelta(days=settings.baseline_days)
    )
    if baseline >= window_start:
        raise ConfigError(
            f"the baseline starts ({baseline:%Y-%m-%d %H:%M}) at or after the analysis window "
            f"({window_start:%Y-%m-%d %H:%M})",
            hint="pass --baseline-start before --start",
        )
    return baseline, window_start, window_end


def plans_for_window(
    export: QueryStoreExport, *, window_start: datetime, window_end: datetime
) -> pd.DataFrame:
    """The export's plans plus ``force_failure_count_before``: the counter at the window start, inferred.

    One export holds only the counter's level, and the level never counts. A rise is inferred when a
    forced plan has failures and another plan of its query was compiled in the window after the forced
    plan's last compile: each compile of a query with a forced plan tries to force it, so a different
    plan means forcing failed. The rise is a lower bound: all compiles of plans first compiled in the
    window, else one per plan, at most the counter. Without compile times the value is unknown (NaN).
    """
    plans = export.plans.copy()
    compiles = export.plan_compiles
    if compiles["last_compile_start_time"].isna().all():
        plans["force_failure_count_before"] = np.nan
        return plans
    forced = plans.loc[plans["is_forced"] & (plans["force_failure_count"] > 0), ["plan_id", "query_id"]]
    forced = forced.merge(compiles[["plan_id", "last_compile_start_time"]], on="plan_id", how="left")
    others = compiles.merge(forced, on="query_id", suffixes=("", "_forced"))
    compiled = others["last_compile_start_time"]
    failed = others.loc[
        (others["plan_id"] != others["plan_id_forced"])
        & (compiled >= window_start)
        & (compiled < window_end)
        & ~(compiled <= others["last_compile_start_time_forced"])
    ]
    first_in_window = failed["initial_compile_start_time"] >= window_start
    count = failed["count_compiles"].astype("float64").fillna(1.0).clip(lower=1.0)
    failures = count.where(first_in_window, 1.0).groupby(failed["plan_id_forced"]).sum()
    rise = plans["plan_id"].map(failures).fillna(0.0)
    rise = rise.clip(upper=plans["force_failure_count"].astype("float64"))
    plans["force_failure_count_before"] = plans["force_failure_count"] - rise
    return plans


def analyze_export(
    directory: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    baseline_start: datetime | None = None,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Regressions in a Query Store export, as the CLI prints them with ``--json``.

    Without ``start``/``end`` the last 24 hours of the export are analysed; the baseline is the
    ``settings.baseline_days`` before the window unless ``baseline_start`` is given.
    """
    from planmon.analysis.detect import detect

    export = load_export(directory)
    baseline, window_start, window_end = analysis_window(
        export, start=start, end=end, baseline_start=baseline_start, settings=settings
    )
    stats = export.runtime_stats
    stats = stats.loc[(stats["interval_start"] >= baseline) & (stats["interval_start"] < window_end)]
    if not (stats["interval_start"] >= window_start).any():
        logger.warning(
            "query store export %s: no runtime stats in the window %s - %s; the export covers %s - %s",
            export.directory,
            window_start,
            window_end,
            export.intervals["start_time"].min(),
            export.intervals["end_time"].max(),
        )
    detections = detect(
        stats,
        plans_for_window(export, window_start=window_start, window_end=window_end),
        window_start=window_start,
        window_end=window_end,
        baseline_start=baseline,
        settings=settings,
    )
    logger.info(
        "query store export %s: window %s - %s, baseline from %s: %d runtime stats rows, %d regressions",
        export.directory,
        window_start,
        window_end,
        baseline,
        len(stats),
        len(detections),
    )
    return detections_json(detections, export, window_end=window_end)


def detections_json(
    detections: pd.DataFrame, export: QueryStoreExport, *, window_end: datetime
) -> list[dict[str, Any]]:
    """DETECTION_COLUMNS rows as the CLI's JSON objects, numbered in the detector's order."""
    detected_at = pd.Timestamp(window_end).isoformat()  # naive UTC, as repository mode prints it
    texts = dict(zip(export.queries["query_id"].tolist(), export.queries["query_text"].tolist(), strict=True))
    statements: dict[int, PlanStatement | None] = {}  # each plan parsed once for all its diffs
    regressions: list[dict[str, Any]] = []
    for sequence, detection in enumerate(detections.to_dict("records"), start=1):
        baseline_plan = _plan_key(detection.get("baseline_plan_id"))
        current_plan = _plan_key(detection.get("current_plan_id"))
        regressions.append(
            {
                "id": sequence,
                "target": EXPORT_TARGET,
                "query_id": str(int(detection["query_id"])),
                "query_text": texts.get(int(detection["query_id"])),
                "kind": detection["kind"],
                "metric": detection["metric"],
                "baseline_plan": baseline_plan,
                "current_plan": current_plan,
                "baseline_mean": _number(detection.get("baseline_mean")),
                "current_mean": _number(detection.get("current_mean")),
                "ratio": _number(detection.get("ratio")),
                "impact": _number(detection.get("impact")),
                "p_value": _number(detection.get("p_value")),
                "severity": detection.get("severity"),
                "status": "open",
                "first_detected": detected_at,
                "last_detected": detected_at,
                "diff": plan_diff_text(export, baseline_plan, current_plan, cache=statements),
            }
        )
    return regressions


def plan_diff_text(
    export: QueryStoreExport,
    baseline_plan: str | None,
    current_plan: str | None,
    *,
    cache: dict[int, PlanStatement | None] | None = None,
) -> str | None:
    """What changed between the two plans (text), or None unless both plans' XML is there and parses."""
    if baseline_plan is None or current_plan is None or baseline_plan == current_plan:
        return None
    from planmon.plans.diff import diff_statements

    cache = {} if cache is None else cache
    before = _plan_statement(export, int(baseline_plan), cache)
    after = _plan_statement(export, int(current_plan), cache)
    if before is None or after is None:
        return None
    return diff_statements(before, after).as_text()


def _plan_statement(
    export: QueryStoreExport, plan_id: int, cache: dict[int, PlanStatement | None]
) -> PlanStatement | None:
    if plan_id not in cache:
        body = export.plan_bodies.get(plan_id)
        cache[plan_id] = None if body is None else main_statement(_parse(body))
    return cache[plan_id]


def _plan_key(value: object) -> str | None:
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return None
    return str(int(value)) if isinstance(value, int | float | np.integer | np.floating) else str(value)


def _number(value: object) -> float | None:
    """A JSON-safe float: NaN and infinities (no baseline, zero baseline) become null."""
    if value is None or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if np.isfinite(number) else None
