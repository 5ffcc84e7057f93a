"""PostgreSQL rules: each fires on a real plan that has the problem and stays quiet on one that does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.plans import postgres
from planmon.plans.model import Finding, PlanNode, PlanStatement, Severity
from planmon.plans.rules import find_all
from planmon.plans.rules import postgres as rules


def _statement(path: Path) -> PlanStatement:
    return postgres.parse(path.read_bytes(), source=path.name).statements[0]


def _corpus(corpus_dir: Path, name: str) -> PlanStatement:
    return _statement(corpus_dir / "postgres" / name)


def _fixture(fixtures_dir: Path, name: str) -> PlanStatement:
    return _statement(fixtures_dir / "postgres" / name)


def _found(statement: PlanStatement, rule_id: str) -> list[Finding]:
    return [finding for finding in rules.find(statement) if finding.id == rule_id]


def _node(statement: PlanStatement, node_id: int | None) -> PlanNode:
    return next(node for node in statement.nodes() if node.node_id == node_id)


# -- seq_scan_filter --------------------------------------------------------------------------------------


def test_seq_scan_filter_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__sample_parallel_2.txt")
    (finding,) = _found(statement, "seq_scan_filter")
    node = _node(statement, finding.node_id)
    assert (node.physical_op, node.parallel) == ("Seq Scan", True)  # Parallel Seq Scan on lineitem
    assert finding.severity is Severity.WARNING
    assert finding.evidence["table"] == "lineitem"
    assert finding.evidence["rows_removed"] == 11934691 * 5  # per-loop figure times 5 loops
    assert finding.evidence["removed_fraction"] > 0.99
    assert "\n" not in finding.message


@pytest.mark.parametrize(
    "name",
    [
        "pev2__psql-frame_json_unicode.txt",  # 99.9 % removed, but only 13,220 rows read: a small table
        "pev2__sample_asmany_pg17.txt",  # 2.5 M rows read, but half of them kept: the filter is not selective
        "pev2__from-text_45_buckets.txt",  # 10 M rows read, 101 removed
    ],
)
def test_seq_scan_filter_quiet(corpus_dir: Path, name: str) -> None:
    assert _found(_corpus(corpus_dir, name), "seq_scan_filter") == []


def test_seq_scan_filter_needs_a_big_table(corpus_dir: Path) -> None:
    """job 14a scans info_type (113 rows) thousands of times: the loop, not the table, is the problem."""
    statement = _corpus(corpus_dir, "job__14a.json")
    tables = {f.evidence["table"] for f in _found(statement, "seq_scan_filter")}
    assert tables == {"public.keyword"}


# -- spill ------------------------------------------------------------------------------------------------


def test_spill_sort_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__sample_plan7_unicode_frame.txt")
    findings = _found(statement, "spill")
    assert [f.evidence["kind"] for f in findings] == ["sort", "sort", "sort"]
    assert [f.evidence["disk_kb"] for f in findings] == [141936, 115072, 215352]
    assert all(_node(statement, f.node_id).physical_op == "Sort" for f in findings)


def test_spill_hash_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__from-text_46_buckets.txt")
    (finding,) = _found(statement, "spill")
    assert _node(statement, finding.node_id).physical_op == "Hash"
    assert (finding.evidence["batches"], finding.evidence["original_batches"]) == (2048, 8)
    assert "planned 8" in finding.message


def test_spill_hash_aggregate_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__from-text_47_planned_partitions.txt")
    (finding,) = _found(statement, "spill")
    assert (finding.node_id, finding.evidence["kind"], finding.evidence["disk_kb"]) == (
        0,
        "hash_aggregate",
        31752,
    )


def test_spill_json_plan_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__test04_actual_duration_parallel.json")
    assert [f.evidence["kind"] for f in _found(statement, "spill")] == ["sort"]


@pytest.mark.parametrize(
    "name",
    [
        "pev2__io-timings_read-and-write.txt",  # quicksort in 31 MB of memory, hash in one batch
        "pev2__from-text_48_memoize.txt",
        "pev2__sample_plan1.json",
    ],
)
def test_spill_quiet(corpus_dir: Path, name: str) -> None:
    assert _found(_corpus(corpus_dir, name), "spill") == []


# -- nested_loop_large_outer ------------------------------------------------------------------------------


def test_nested_loop_large_outer_found(corpus_dir: Path) -> None:
    statement = _corpus(corpus_dir, "pev2__cte-exclusive-time_03_psql_frame.txt")
    findings = _found(statement, "nested_loop_large_outer")
    assert len(findings) == 2
    for finding in findings:
        assert _node(statement, finding.node_id).physical_op == "Nested Loop"
        assert finding.evidence["inner_op"] == "CTE Scan"
        assert finding.evidence["inner_loops"] >= 1_000 and finding.evidence["inner_rows"] >= 1_000_000


@pytest.mark.parametrize(
    "name",
    [
        "pev2__sample_trigger.txt",  # 5,000 loops, but each an Index Scan on the primary key
        "pev2__io-timings_11.txt",  # 116,704 loops of an index lookup
        "pev2__from-text_48_memoize.txt",  # inner side cached by Memoize
    ],
)
def test_nested_loop_large_outer_quiet(corpus_dir: Path, name: str) -> None:
    assert _found(_corpus(corpus_dir, name), "nested_loop_large_outer") == []


def test_nested_loop_large_outer_quiet_on_small_rescans(fixtures_dir: Path) -> None:
    # a Materialize of 200 rows rescanned 400 times: cheap (that plan's problem is no_join_predicate)
    assert _found(_fixture(fixtures_dir, "pg15_cross_join_analyze.json"), "nested_loop_large_outer") == []


# -- no_join_predicate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pg15_cross_join_analyze.json", "pg15_cross_join_analyze_psql.txt"])
def test_no_join_predicate_found(fixtures_dir: Path, name: str) -> None:
    statement = _fixture(fixtures_dir, name)
    (finding,) = _found(statement, "no_join_predicate")
    assert finding.severity is Severity.CRITICAL
    assert _node(statement, finding.node_id).physical_op == "Nested Loop"
    assert finding.evidence["combinations"] == 80_000


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("fixtures", "pg15_index_nested_loop_estimated_psql.txt"),  # inner Bitmap Heap Scan uses i.item_id
        ("corpus", "pev2__psql-frame_json_unicode.txt"),  # a real cross join, but 1 x 15 rows
        ("corpus", "pev2__sample_plan1.json"),  # Join Filter present
        ("corpus", "pev2__from-text_48_memoize.txt"),  # parameterised through Memoize: Index Cond s.user_id
    ],
)
def test_no_join_predicate_quiet(corpus_dir: Path, fixtures_dir: Path, folder: str, name: str) -> None:
    base = fixtures_dir if folder == "fixtures" else corpus_dir
    assert _found(_statement(base / "postgres" / name), "no_join_predicate") == []


# -- whole corpus ----------------------------------------------------------------------------------------


def test_estimated_plans_only_get_estimate_based_findings(fixtures_dir: Path) -> None:
    statement = _fixture(fixtures_dir, "pg15_hash_join_verbose_json_psql_frame.txt")
    assert not statement.is_actual
    assert rules.find(statement) == []


def test_findings_go_through_find_all(fixtures_dir: Path) -> None:
    statement = _fixture(fixtures_dir, "pg15_cross_join_analyze.json")
    assert "no_join_predicate" in {f.id for f in find_all(statement, "postgres")}
    as_dict = rules.find(statement)[0].as_dict()
    assert set(as_dict) == {"id", "severity", "node", "message", "evidence"}


def test_rules_never_fail_on_the_corpus(corpus_dir: Path) -> None:
    counts: dict[str, int] = {}
    for path in sorted((corpus_dir / "postgres").glob("*")):
        if path.name == "SOURCES.md":
            continue
        for statement in postgres.parse(path.read_bytes()).statements:
            for finding in rules.find(statement):
                counts[finding.id] = counts.get(finding.id, 0) + 1
                assert finding.node_id is not None and finding.message
    # guards against a threshold change that silently floods (or silences) the corpus
    assert counts == {"seq_scan_filter": 6, "spill": 15, "nested_loop_large_outer": 2}


# -- nested_loop_large_outer: is the inner side driven by the join? (issue 18) ----------------------------

CONSTANT_INNER = """\
Nested Loop  (cost=0.29..900000.00 rows=100 width=8) (actual time=0.02..461.0 rows=100 loops=1)
  Join Filter: (o.customer_id = c.id)
  Rows Removed by Join Filter: 5800000
  ->  Seq Scan on customers c  (cost=0.00..35.00 rows=200000 width=4) (actual time=0..20 rows=200000 loops=1)
  ->  Index Scan using pk on orders o  (cost=0.29..1 rows=29 width=8) (actual time=0..0 rows=29 loops=200000)
        Index Cond: (id < 30)
"""


def test_nested_loop_with_an_index_condition_unrelated_to_the_join_is_found() -> None:
    (finding,) = _found(postgres.parse(CONSTANT_INNER).statements[0], "nested_loop_large_outer")
    assert finding.evidence["inner_loops"] == 200_000
    assert finding.evidence["join_filter_removed"] == 5_800_000
    assert "without a lookup driven by the outer rows" in finding.message


def test_nested_loop_whose_index_condition_uses_the_outer_row_is_quiet() -> None:
    driven = CONSTANT_INNER.replace("Index Cond: (id < 30)", "Index Cond: (customer_id = c.id)")
    assert _found(postgres.parse(driven).statements[0], "nested_loop_large_outer") == []
