"""Offline Query Store exports: reading the five view files, merging in-memory and flushed rows, the
default window, and analysing the fixture export (tests/fixtures/querystore_export/shop)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from planmon.analysis.frames import PLAN_COLUMNS, RUNTIME_STATS_COLUMNS
from planmon.analysis.querystore_export import (
    EXPORT_FILES,
    PLAN_FILE,
    RUNTIME_STATS_FILE,
    ViewFile,
    analysis_window,
    analyze_export,
    default_window,
    load_export,
    parse_timestamp,
    plans_for_window,
)
from planmon.config import Settings
from planmon.errors import ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "querystore_export"
SHOP = FIXTURES / "shop"
SETTINGS = Settings()
JSON_KEYS = [
    "id",
    "target",
    "query_id",
    "query_text",
    "kind",
    "metric",
    "baseline_plan",
    "current_plan",
    "baseline_mean",
    "current_mean",
    "ratio",
    "impact",
    "p_value",
    "severity",
    "status",
    "first_detected",
    "last_detected",
    "diff",
]

Rows = Sequence[Sequence[object]]
STATS_HEADER = [
    "runtime_stats_id",
    "plan_id",
    "runtime_stats_interval_id",
    "execution_type",
    "count_executions",
    "avg_duration",
    "stdev_duration",
    "avg_cpu_time",
    "stdev_cpu_time",
    "avg_logical_io_reads",
]


def write_csv(path: Path, header: Sequence[str], rows: Rows, *, encoding: str = "utf-8") -> None:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def minimal_export(directory: Path, **files: tuple[Sequence[str], Rows]) -> Path:
    """An export with only the required columns (one query, one plan, two hourly intervals); ``files``
    replaces a file's (header, rows) by file stem, e.g. ``query_store_plan=(header, rows)``."""
    default: dict[str, tuple[Sequence[str], Rows]] = {
        "query_store_runtime_stats_interval": (
            ["runtime_stats_interval_id", "start_time", "end_time"],
            [
                [1, "2026-11-20 12:00:00.0000000 +00:00", "2026-11-20 13:00:00.0000000 +00:00"],
                [2, "2026-11-20 13:00:00.0000000 +00:00", "2026-11-20 14:00:00.0000000 +00:00"],
            ],
        ),
        "query_store_runtime_stats": (
            STATS_HEADER,
            [
                [1, 11, 1, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0],
                [2, 11, 2, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0],
            ],
        ),
        "query_store_plan": (
            ["plan_id", "query_id", "is_forced_plan", "force_failure_count"],
            [[11, 1, 0, 0]],
        ),
        "query_store_query": (["query_id", "query_text_id", "query_hash"], [[1, 7, "0x00AA"]]),
        "query_store_query_text": (
            ["query_text_id", "query_sql_text"],
            [[7, "SELECT 1 FROM t WHERE a = 'x'"]],
        ),
    }
    default.update(files)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, (header, rows) in default.items():
        write_csv(directory / f"{stem}.csv", header, rows)
    return directory


# -- the fixture export ----------------------------------------------------------------------------


def test_fixture_export_reads_into_the_contract_frames() -> None:
    export = load_export(SHOP)
    assert list(export.runtime_stats.columns) == list(RUNTIME_STATS_COLUMNS)
    assert list(export.plans.columns)[: len(PLAN_COLUMNS)] == list(PLAN_COLUMNS)
    assert set(export.plans["plan_id"]) == {1001, 1002, 2001, 3001, 4001, 4002}
    assert export.plans["shape_hash"].notna().all()
    assert (
        export.plans.set_index("plan_id").loc[1001, "shape_hash"]
        != export.plans.set_index("plan_id").loc[1002, "shape_hash"]
    )
    forced = export.plans.set_index("plan_id").loc[4001]
    assert bool(forced["is_forced"]) and forced["forcing_type"] == "MANUAL"
    assert forced["force_failure_count"] == 23 and forced["last_force_failure_reason"] == "NO_INDEX"
    assert export.plans.set_index("plan_id").loc[1001, "forcing_type"] is None
    assert export.runtime_stats["interval_start"].dtype.kind == "M"
    assert export.runtime_stats["interval_start"].dt.tz is None
    errors = export.runtime_stats
    assert (errors.loc[errors["execution_type"].isin([3, 4]), "errors"] > 0).all()
    assert (errors.loc[errors["execution_type"] == 0, "errors"] == 0).all()
    assert errors["rows_examined_mean"].isna().all()
    text = export.query_text(101)
    assert text is not None and "cancelled" not in text and "<> ?" in text  # literals stripped
    assert export.plan_xml(1001) is not None and export.plan_xml(1001).startswith(b"<ShowPlanXML")  # type: ignore[union-attr]
    assert export.plan_xml(999) is None


def test_fixture_open_interval_rows_are_merged_into_one_per_key() -> None:
    with (SHOP / RUNTIME_STATS_FILE.file_name).open(encoding="utf-8", newline="") as handle:
        raw = list(csv.DictReader(handle))
    per_key: dict[tuple[int, int, int], int] = {}
    for row in raw:
        key = (int(row["plan_id"]), int(row["runtime_stats_interval_id"]), int(row["execution_type"]))
        per_key[key] = per_key.get(key, 0) + int(row["count_executions"])
    assert len(per_key) < len(raw)  # the fixture has in-memory + flushed duplicates
    stats = load_export(SHOP).runtime_stats
    assert not stats.duplicated(["plan_id", "interval_start", "execution_type"]).any()
    assert len(stats) == len(per_key)
    assert int(stats["executions"].sum()) == sum(per_key.values())


def test_default_window_is_the_last_24_hours_of_the_export() -> None:
    export = load_export(SHOP)
    assert default_window(export) == (datetime(2026, 11, 19, 14), datetime(2026, 11, 20, 14))
    baseline, start, end = analysis_window(
        export, start=None, end=None, baseline_start=None, settings=SETTINGS
    )
    assert (start, end) == (datetime(2026, 11, 19, 14), datetime(2026, 11, 20, 14))
    assert baseline == start - timedelta(days=7)


def test_analysis_window_takes_given_bounds_and_refuses_reversed_ones() -> None:
    export = load_export(SHOP)
    end = datetime(2026, 11, 20, 12, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    baseline, start, window_end = analysis_window(
        export, start=None, end=end, baseline_start=datetime(2026, 11, 17), settings=SETTINGS
    )
    assert window_end == datetime(2026, 11, 20, 10) and start == datetime(2026, 11, 19, 10)
    assert baseline == datetime(2026, 11, 17)
    with pytest.raises(ConfigError, match="--start before --end"):
        analysis_window(export, start=end, end=end, baseline_start=None, settings=SETTINGS)
    with pytest.raises(ConfigError, match="--baseline-start before --start"):
        analysis_window(
            export, start=None, end=None, baseline_start=datetime(2026, 11, 20), settings=SETTINGS
        )


def test_json_keys_are_the_documented_cli_shape() -> None:
    from planmon.analysis.report import JSON_KEYS as REPORT_KEYS

    assert tuple(JSON_KEYS) == REPORT_KEYS


def test_analyze_export_finds_the_plan_change_and_not_the_steady_query() -> None:
    regressions = analyze_export(SHOP, settings=SETTINGS)
    assert all(list(regression) == JSON_KEYS for regression in regressions)
    json.dumps(regressions, allow_nan=False)  # plain JSON: no NaN, no numpy scalars
    assert [r["id"] for r in regressions] == list(range(1, len(regressions) + 1))
    by_query = {(r["query_id"], r["kind"]): r for r in regressions}
    change = by_query[("101", "plan_change")]
    assert (change["baseline_plan"], change["current_plan"]) == ("1001", "1002")
    assert change["metric"] == "cpu_us" and change["ratio"] > 10 and change["p_value"] < 0.01
    assert change["target"] == "query-store-export" and change["status"] == "open"
    assert change["first_detected"] == change["last_detected"] == "2026-11-20T14:00:00"
    assert "Clustered Index Scan" in change["diff"] and "IX_Orders_CustomerId" in change["diff"]
    assert "cancelled" not in change["query_text"]
    assert not [r for r in regressions if r["query_id"] == "102"]
    assert ("103", "error_prone") in by_query
    failure = by_query[("104", "forced_plan_failure")]
    assert failure["current_plan"] == "4001" and failure["current_mean"] == 23.0
    assert failure["diff"] is None


def test_analyze_export_before_the_regressions_finds_nothing() -> None:
    regressions = analyze_export(
        SHOP, start=datetime(2026, 11, 18, 12), end=datetime(2026, 11, 19, 12), settings=SETTINGS
    )
    assert regressions == []


def test_fixture_is_what_make_export_writes(tmp_path: Path) -> None:
    import runpy

    module = runpy.run_path(str(FIXTURES / "make_export.py"))
    module["main"](tmp_path)
    for view in EXPORT_FILES:  # line endings aside: a checkout may normalise them
        written = (tmp_path / view.file_name).read_bytes().replace(b"\r\n", b"\n")
        assert written == (SHOP / view.file_name).read_bytes().replace(b"\r\n", b"\n"), view.file_name


# -- columns and files -----------------------------------------------------------------------------


@pytest.mark.parametrize("view", EXPORT_FILES, ids=lambda view: view.file_name)
def test_a_missing_required_column_is_named_with_its_file(tmp_path: Path, view: ViewFile) -> None:
    directory = minimal_export(tmp_path / "export")
    path = directory / view.file_name
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = list(view.required)[-1]
    frame.drop(columns=[column]).to_csv(path, index=False)
    with pytest.raises(ConfigError) as caught:
        load_export(directory)
    assert column in str(caught.value) and view.file_name in str(caught.value)
    assert "SELECT *" in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    directory = minimal_export(tmp_path / "export")
    (directory / "query_store_query_text.csv").unlink()
    with pytest.raises(ConfigError, match=r"query_store_query_text\.csv \(sys\.query_store_query_text\)"):
        load_export(directory)
    with pytest.raises(ConfigError, match="does not exist"):
        load_export(tmp_path / "nowhere")


def test_extra_columns_are_ignored_and_header_case_does_not_matter(tmp_path: Path) -> None:
    header = [
        "runtime_stats_id",
        " PLAN_ID ",
        *STATS_HEADER[2:],
        "avg_dop",
        "replica_group_id",
        "future_column",
    ]
    rows = [[1, 11, 1, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0, 1, 1, "anything, at all"]]
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats=(header, rows))
    stats = load_export(directory).runtime_stats
    assert list(stats.columns) == list(RUNTIME_STATS_COLUMNS)
    assert stats.loc[0, "plan_id"] == 11 and stats.loc[0, "cpu_us_mean"] == 500.0


def test_a_value_that_is_not_a_number_is_named_with_column_and_row(tmp_path: Path) -> None:
    rows = [
        [1, 11, 1, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0],
        [2, 11, 2, 0, "lots", 900.0, 90.0, 5.0, 5.0, 1.0],
    ]
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats=(STATS_HEADER, rows))
    with pytest.raises(ConfigError, match=r"column 'count_executions', row 2: 'lots' is not an integer"):
        load_export(directory)


def test_an_empty_key_is_named_with_column_and_row(tmp_path: Path) -> None:
    rows = [
        [1, 11, 1, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0],
        [2, "NULL", 2, 0, 5, 900.0, 90.0, 5.0, 5.0, 1.0],
    ]
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats=(STATS_HEADER, rows))
    with pytest.raises(
        ConfigError, match=r"query_store_runtime_stats\.csv: column 'plan_id', row 2 is empty"
    ):
        load_export(directory)


def test_utf16_files_with_a_bom_are_read(tmp_path: Path) -> None:
    directory = minimal_export(tmp_path / "export")
    path = directory / "query_store_query_text.csv"
    write_csv(path, ["query_text_id", "query_sql_text"], [[7, "SELECT naïve FROM t"]], encoding="utf-16")
    assert load_export(directory).query_text(1) == "SELECT naïve FROM t"


# -- date and time ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-20 13:00:00.0000000 +00:00", "2026-11-20 14:00:00.0000000 +00:00"),  # SQL Server
        ("2026-11-20 14:00:00.0000000 +01:00", "2026-11-20 09:00:00.0000000 -05:00"),  # other offsets
        ("2026-11-20T13:00:00Z", "2026-11-20T14:00:00.000+00:00"),  # ISO 8601
        ("2026-11-20T13:00:00", "2026-11-20 14:00:00"),  # no offset: UTC
    ],
)
def test_both_datetime_formats_read_as_naive_utc(tmp_path: Path, start: str, end: str) -> None:
    intervals = (["runtime_stats_interval_id", "start_time", "end_time"], [[1, start, end]])
    stats = (STATS_HEADER, [[1, 11, 1, 0, 100, 900.0, 90.0, 500.0, 50.0, 12.0]])
    directory = minimal_export(
        tmp_path / "export", query_store_runtime_stats_interval=intervals, query_store_runtime_stats=stats
    )
    row = load_export(directory).runtime_stats.iloc[0]
    assert row["interval_start"] == pd.Timestamp("2026-11-20 13:00")
    assert row["interval_end"] == pd.Timestamp("2026-11-20 14:00")


def test_an_unreadable_datetime_is_named_with_file_column_and_row(tmp_path: Path) -> None:
    intervals = (
        ["runtime_stats_interval_id", "start_time", "end_time"],
        [
            [1, "2026-11-20 12:00:00.0000000 +00:00", "2026-11-20 13:00:00.0000000 +00:00"],
            [2, "20/11/2026 1:00 PM", "2026-11-20 14:00:00.0000000 +00:00"],
        ],
    )
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats_interval=intervals)
    with pytest.raises(ConfigError) as caught:
        load_export(directory)
    message = str(caught.value)
    assert "query_store_runtime_stats_interval.csv" in message and "'start_time'" in message
    assert "row 2" in message and "20/11/2026 1:00 PM" in message and "ISO 8601" in message


def test_parse_timestamp_for_command_line_bounds() -> None:
    assert parse_timestamp("2026-11-20 13:00:00.1234567 +01:00") == datetime(2026, 11, 20, 12, 0, 0, 123456)
    assert parse_timestamp("2026-11-20T13:00:00Z") == datetime(2026, 11, 20, 13)
    with pytest.raises(ConfigError, match="cannot read 'yesterday'"):
        parse_timestamp("yesterday")


# -- merging in-memory and flushed rows ------------------------------------------------------------


def test_rows_of_one_plan_interval_and_execution_type_are_pooled(tmp_path: Path) -> None:
    rows = [
        # flushed and in-memory rows of plan 11, interval 2, regular executions
        [1, 11, 2, 0, 30, 1000.0, 100.0, 100.0, 10.0, 4.0],
        [2, 11, 2, 0, 10, 2000.0, 300.0, 200.0, 20.0, 8.0],
        # the same interval's aborted executions stay apart (other execution_type)
        [3, 11, 2, 3, 2, 30_000_000.0, 0.0, 250.0, 0.0, 5.0],
        [4, 11, 2, 3, 1, 30_000_000.0, 0.0, 100.0, 0.0, 5.0],
    ]
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats=(STATS_HEADER, rows))
    stats = load_export(directory).runtime_stats.set_index("execution_type")
    assert len(stats) == 2
    regular = stats.loc[0]
    # mean = (30*100 + 10*200) / 40 = 125
    # E[x^2] = (30*(10^2 + 100^2) + 10*(20^2 + 200^2)) / 40 = (303000 + 404000) / 40 = 17675
    # variance = 17675 - 125^2 = 2050
    assert regular["executions"] == 40 and regular["errors"] == 0
    assert regular["cpu_us_mean"] == pytest.approx(125.0)
    assert regular["cpu_us_stdev"] == pytest.approx(math.sqrt(2050.0))
    # duration: mean (30*1000 + 10*2000)/40 = 1250; E[x^2] = (30*(100^2+1000^2) + 10*(300^2+2000^2))/40
    # = (30300000 + 40900000)/40 = 1780000; variance = 1780000 - 1562500 = 217500
    assert regular["duration_us_mean"] == pytest.approx(1250.0)
    assert regular["duration_us_stdev"] == pytest.approx(math.sqrt(217_500.0))
    assert regular["logical_reads_mean"] == pytest.approx((30 * 4.0 + 10 * 8.0) / 40)
    aborted = stats.loc[3]
    assert aborted["executions"] == 3 and aborted["errors"] == 3
    assert aborted["cpu_us_mean"] == pytest.approx(200.0)  # (2*250 + 1*100) / 3
    assert aborted["cpu_us_stdev"] == pytest.approx(math.sqrt((2 * 250.0**2 + 100.0**2) / 3 - 200.0**2))


def test_a_row_without_a_mean_does_not_weigh_in_that_metric(tmp_path: Path) -> None:
    rows = [
        [1, 11, 2, 0, 30, 1000.0, 0.0, 100.0, 0.0, 4.0],
        [2, 11, 2, 0, 10, 1000.0, 0.0, "NULL", "NULL", 4.0],
    ]
    directory = minimal_export(tmp_path / "export", query_store_runtime_stats=(STATS_HEADER, rows))
    row = load_export(directory).runtime_stats.iloc[0]
    assert row["executions"] == 40 and row["cpu_us_mean"] == pytest.approx(100.0)
    assert row["cpu_us_stdev"] == pytest.approx(0.0)


# -- plans -----------------------------------------------------------------------------------------


def test_plans_without_text_or_with_unreadable_text_keep_their_identity(tmp_path: Path) -> None:
    plans = (
        ["plan_id", "query_id", "is_forced_plan", "force_failure_count", "query_plan"],
        [[11, 1, 0, 0, "<ShowPlanXML truncated"], [12, 1, "True", 2, "NULL"]],
    )
    directory = minimal_export(tmp_path / "export", query_store_plan=plans)
    export = load_export(directory)
    by_id = export.plans.set_index("plan_id")
    assert by_id["shape_hash"].isna().all()
    assert export.plan_xml(11) == b"<ShowPlanXML truncated" and export.plan_xml(12) is None
    # SQL Server 2016 exports have no plan_forcing_type columns: a forced plan is a user's
    assert bool(by_id.loc[12, "is_forced"]) and by_id.loc[12, "forcing_type"] == "MANUAL"
    assert by_id.loc[11, "forcing_type"] is None


def test_without_compile_times_a_forcing_failure_rise_is_unknown(tmp_path: Path) -> None:
    assert list(PLAN_FILE.required) == ["plan_id", "query_id", "is_forced_plan", "force_failure_count"]
    directory = minimal_export(
        tmp_path / "export", query_store_plan=(list(PLAN_FILE.required), [[11, 1, 1, 5]])
    )
    export = load_export(directory)
    window = {"window_start": datetime(2026, 11, 20, 12), "window_end": datetime(2026, 11, 20, 14)}
    assert plans_for_window(export, **window)["force_failure_count_before"].isna().all()


def test_forcing_failures_are_inferred_from_compiles_in_the_window() -> None:
    export = load_export(SHOP)
    in_window = plans_for_window(
        export, window_start=datetime(2026, 11, 19, 14), window_end=datetime(2026, 11, 20, 14)
    ).set_index("plan_id")
    assert in_window.loc[4001, "force_failure_count_before"] == 0  # 23 compiles of 4002, all in the window
    assert (
        in_window.drop(index=4001)["force_failure_count_before"]
        == in_window.drop(index=4001)["force_failure_count"]
    ).all()
    before = plans_for_window(
        export, window_start=datetime(2026, 11, 18, 12), window_end=datetime(2026, 11, 19, 12)
    ).set_index("plan_id")
    assert before.loc[4001, "force_failure_count_before"] == 23  # no failure visible then: level only


def test_planmon_own_queries_are_left_out(tmp_path: Path) -> None:
    texts = (["query_text_id", "query_sql_text"], [[7, "WITH /* planmon */ top_plans AS (SELECT 1)"]])
    directory = minimal_export(tmp_path / "export", query_store_query_text=texts)
    assert load_export(directory).runtime_stats.empty


def test_analysis_of_an_export_uses_utc_bounds_given_with_offsets(tmp_path: Path) -> None:
    directory = minimal_export(tmp_path / "export")
    regressions = analyze_export(
        directory,
        start=datetime(2026, 11, 20, 13, tzinfo=UTC),
        end=datetime(2026, 11, 20, 16, tzinfo=timezone(timedelta(hours=2))),
        settings=SETTINGS,
    )
    assert regressions == []
