"""MySQL / MariaDB rules: each fires on a real plan that has the problem, stays quiet on one that has not."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.plans import mysql
from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity
from planmon.plans.rules import find_all
from planmon.plans.rules import mysql as rules


def _statement(path: Path) -> PlanStatement:
    return mysql.parse(path.read_bytes(), source=path.name).statements[0]


def _load(corpus_dir: Path, fixtures_dir: Path, where: str) -> PlanStatement:
    """``corpus:<name>`` reads the shared corpus (GPL/CC files, never copied), ``fixture:<name>`` ours."""
    folder, name = where.split(":", 1)
    base = corpus_dir if folder == "corpus" else fixtures_dir
    return _statement(base / "mysql" / name)


def _found(statement: PlanStatement, rule_id: str) -> list[Finding]:
    return [finding for finding in rules.find(statement) if finding.id == rule_id]


def _node(statement: PlanStatement, node_id: int | None) -> PlanNode:
    return next(node for node in statement.nodes() if node.node_id == node_id)


# -- full_scan / missing_index ----------------------------------------------------------------------------


def test_full_scan_found(fixtures_dir: Path) -> None:
    statement = _statement(fixtures_dir / "mysql" / "mariadb_explain_semijoin_subquery.json")
    (finding,) = _found(statement, "full_scan")
    node = _node(statement, finding.node_id)
    assert (node.physical_op, node.object.table if node.object else None) == (
        "Full Table Scan",
        "planmon_fx_orders",
    )
    assert finding.evidence["possible_keys"] == ["i_o_cust"]
    assert finding.severity is Severity.WARNING


@pytest.mark.parametrize(
    "where",
    [
        "corpus:unofficialmysqlguide_example_16.json",  # full scan of Country: 239 rows
        "corpus:percona_blog_2015-12-22a.json",  # full scan of dept_manager with a candidate key: 24 rows
        "fixture:mariadb_explain_update_range.json",  # range scan
    ],
)
def test_full_scan_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "full_scan") == []


@pytest.mark.parametrize(
    ("where", "table"),
    [
        ("corpus:percona_blog_2015-12-22c.json", "salaries"),
        ("fixture:mariadb_analyze_full_scan_filesort.json", "planmon_fx_orders"),
    ],
)
def test_missing_index_found(corpus_dir: Path, fixtures_dir: Path, where: str, table: str) -> None:
    statement = _load(corpus_dir, fixtures_dir, where)
    (finding,) = _found(statement, "missing_index")
    assert finding.evidence["table"] == table
    assert finding.evidence["rows_examined"] >= rules.FULL_SCAN_MIN_ROWS
    node = _node(statement, finding.node_id)
    assert finding.evidence["condition"] == node.predicates[0].text  # literals already stripped
    assert _found(statement, "full_scan") == []  # one finding per scan, not two


def test_missing_index_uses_actual_rows(fixtures_dir: Path) -> None:
    (finding,) = _found(
        _statement(fixtures_dir / "mysql" / "mariadb_analyze_full_scan_filesort.json"), "missing_index"
    )
    assert finding.evidence["rows_examined"] == 100_000  # r_rows x r_loops, not the estimate of 100,139


@pytest.mark.parametrize(
    "where",
    [
        "corpus:unofficialmysqlguide_example_18.json",  # City scanned with no usable key, but 4,188 rows
        "corpus:mariadb_doc.json",  # 1,000 rows
        "fixture:mariadb_analyze_index_lookup.json",
    ],
)
def test_missing_index_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "missing_index") == []


# -- filesort ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "rows"),
    [
        ("corpus:mysql_bug_72180.json", 26_889),  # GROUP BY filesort over the join
        ("fixture:mariadb_explain_group_temporary.json", 19_800),  # 25 x 396 x 2 estimated join rows
    ],
)
def test_filesort_found(corpus_dir: Path, fixtures_dir: Path, where: str, rows: float) -> None:
    statement = _load(corpus_dir, fixtures_dir, where)
    (finding,) = _found(statement, "filesort")
    assert _node(statement, finding.node_id).physical_op == "Sort"
    assert finding.evidence["rows_sorted"] == pytest.approx(rows)


@pytest.mark.parametrize(
    "where",
    [
        "fixture:mariadb_analyze_full_scan_filesort.json",  # ORDER BY ... LIMIT 20 via a priority queue
        "corpus:unofficialmysqlguide_example_25.json",  # filesort of a small range
        "corpus:unofficialmysqlguide_example_30.json",  # ORDER BY satisfied by the index: no filesort
    ],
)
def test_filesort_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "filesort") == []


def test_filesort_after_grouping_is_not_guessed(corpus_dir: Path) -> None:
    """mysql_bug_72180 sorts twice; the ORDER BY sort runs on the groups, whose count the plan omits."""
    statement = _statement(corpus_dir / "mysql" / "mysql_bug_72180.json")
    assert [f.node_id for f in _found(statement, "filesort")] == [3]


# -- temporary_table --------------------------------------------------------------------------------------


def test_temporary_table_found(corpus_dir: Path) -> None:
    statement = _statement(corpus_dir / "mysql" / "percona_blog_2016-02-22a.json")
    (finding,) = _found(statement, "temporary_table")
    assert finding.evidence == {"rows": 442724.0, "operator": "Duplicate Removal"}


@pytest.mark.parametrize(
    "where",
    [
        "fixture:mariadb_explain_group_temporary.json",  # 19,800 rows fit in memory
        "corpus:unofficialmysqlguide_example_27.json",  # UNION: the temporary table is how it works
        "corpus:unofficialmysqlguide_example_16.json",  # materialised derived table
    ],
)
def test_temporary_table_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "temporary_table") == []


# -- join_buffer / no_join_predicate ------------------------------------------------------------------------


def test_join_buffer_found(fixtures_dir: Path) -> None:
    statement = _statement(fixtures_dir / "mysql" / "mariadb_analyze_join_buffer.json")
    (finding,) = _found(statement, "join_buffer")
    assert _node(statement, finding.node_id).physical_op == "Block Nested Loop"
    assert finding.evidence["table"] == "o"
    assert finding.evidence["comparisons"] >= rules.JOIN_BUFFER_MIN_COMPARISONS
    assert _found(statement, "no_join_predicate") == []  # c.c_city = o.o_note links the two sides


@pytest.mark.parametrize(
    "where",
    [
        "fixture:mariadb_analyze_cross_join.json",  # reported as no_join_predicate, the worse problem
        "fixture:mariadb_analyze_index_lookup.json",
        "corpus:unofficialmysqlguide_example_15.json",
    ],
)
def test_join_buffer_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "join_buffer") == []


def test_no_join_predicate_found(fixtures_dir: Path) -> None:
    statement = _statement(fixtures_dir / "mysql" / "mariadb_analyze_cross_join.json")
    (finding,) = _found(statement, "no_join_predicate")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["outer_rows"] == 25
    assert finding.evidence["combinations"] >= rules.NO_JOIN_PREDICATE_MIN_ROWS


@pytest.mark.parametrize(
    "where",
    [
        "corpus:mysql_bug_72180.json",  # content looked up by ref ["transition_id"] from st
        "corpus:unofficialmysqlguide_example_23.json",  # const tables: one row each side
        "fixture:mariadb_analyze_join_buffer.json",
        "fixture:mariadb_explain_semijoin_subquery.json",  # ref "func" feeds the semi-join lookup
    ],
)
def test_no_join_predicate_quiet(corpus_dir: Path, fixtures_dir: Path, where: str) -> None:
    assert _found(_load(corpus_dir, fixtures_dir, where), "no_join_predicate") == []


# -- whole corpus ----------------------------------------------------------------------------------------


def test_findings_go_through_find_all(fixtures_dir: Path) -> None:
    statement = _statement(fixtures_dir / "mysql" / "mariadb_analyze_cross_join.json")
    assert "no_join_predicate" in {f.id for f in find_all(statement, "mysql")}


def test_rules_never_fail_on_the_corpus(corpus_dir: Path) -> None:
    counts: dict[str, int] = {}
    for path in sorted((corpus_dir / "mysql").glob("*.json")):
        for finding in rules.find(_statement(path)):
            counts[finding.id] = counts.get(finding.id, 0) + 1
            assert finding.node_id is not None and finding.message
    # guards against a threshold change that silently floods (or silences) the corpus
    assert counts == {"filesort": 1, "missing_index": 1, "temporary_table": 3}


def test_full_scan_advice_names_the_filtered_columns_not_the_join_index(fixtures_dir: Path) -> None:
    """Semi-join: the candidate index i_o_cust serves only the join; the scan filters on o_total."""
    statement = _statement(fixtures_dir / "mysql" / "mariadb_explain_semijoin_subquery.json")
    (finding,) = _found(statement, "full_scan")
    assert finding.evidence["filter_columns"] == ["o_total"]
    assert "its filter tests o_total" in finding.message


def test_full_scan_columns_leave_out_the_other_tables() -> None:
    node = PlanNode(
        node_id=1,
        physical_op="Full Table Scan",
        object=mysql.ObjectRef(table="o"),
        predicates=[mysql.Predicate("filter", "o.`total` > ? and c.`id` = o.`customer_id`")],
    )
    assert rules.filtered_columns(node) == ["total", "customer_id"]
    assert rules.filtered_columns(PlanNode(node_id=2, physical_op="Full Table Scan")) == []
