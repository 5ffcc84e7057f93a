"""planmon.plans.rules.sqlserver: each rule fires on a real plan that has the problem and stays quiet
on a real plan that does not (false positives are what users of plan tools complain about most)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planmon.plans import showplan
from planmon.plans.model import Finding, PlanStatement, Severity
from planmon.plans.rules import sqlserver


def _statements(corpus_dir: Path, name: str) -> list[PlanStatement]:
    path = corpus_dir / "sqlserver" / name
    return showplan.parse(path.read_bytes(), source=name).statements


def _findings(corpus_dir: Path, name: str, rule_id: str) -> list[Finding]:
    return [
        finding
        for statement in _statements(corpus_dir, name)
        for finding in sqlserver.find(statement)
        if finding.id == rule_id
    ]


def _quiet(corpus_dir: Path, name: str, rule_id: str, *, at_least: Severity = Severity.INFO) -> None:
    loud = [f for f in _findings(corpus_dir, name, rule_id) if f.severity >= at_least]
    assert not loud, f"{rule_id} fired on {name}: {[f.message for f in loud]}"


# --- engine warnings -------------------------------------------------------------------------------


def test_every_engine_warning_is_surfaced(corpus_dir: Path) -> None:
    """Each warning SQL Server wrote (operator or statement level) yields a finding at the same place."""
    names = [
        "spilltotempdb.sqlplan",
        "hqp_so__inequality_index.sqlplan",
        "unmatched_index.sqlplan",
        "excellent-parallel-spill.sqlplan",
        "table_valued_functon.sqlplan",
        "issue_39.sqlplan",
    ]
    for name in names:
        for statement in _statements(corpus_dir, name):
            places = {finding.node_id for finding in sqlserver.find(statement)}
            warned: set[int | None] = {None} if statement.warnings else set()
            warned |= {node.node_id for node in statement.nodes() if node.warnings}
            assert warned <= places, name


def test_findings_are_well_formed(corpus_dir: Path) -> None:
    for name in ("batch_hash_table_build.sqlplan", "S1uW0oS3.sqlplan", "serially-parallel.sqlplan"):
        for statement in _statements(corpus_dir, name):
            node_ids = {node.node_id for node in statement.nodes()}
            for finding in sqlserver.find(statement):
                assert finding.id in sqlserver.RULE_IDS
                assert "\n" not in finding.message and finding.message
                assert finding.node_id is None or finding.node_id in node_ids
                assert finding.as_dict()["severity"] in ("info", "warning", "critical")


def test_clean_plan_has_no_findings(corpus_dir: Path) -> None:
    for statement in _statements(corpus_dir, "clustered_index_seek.sqlplan"):
        assert sqlserver.find(statement) == []


# --- implicit_conversion -----------------------------------------------------------------------------


def test_implicit_conversion_seek_plan_warning(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "convert_implicit_plan.sqlplan", "implicit_conversion")
    assert [(f.severity, f.evidence["convert_issue"]) for f in findings] == [(Severity.WARNING, "Seek Plan")]


def test_implicit_conversion_cardinality_only_is_info(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "multi-convert.sqlplan", "implicit_conversion")
    assert findings and all(f.severity == Severity.INFO for f in findings)


def test_implicit_conversion_on_column_in_filter_without_engine_warning(corpus_dir: Path) -> None:
    """Plans older than SQL Server 2012 carry no PlanAffectingConvert: the predicate text is read instead."""
    (statement,) = _statements(corpus_dir, "convert_implicit_plan.sqlplan")
    statement.warnings.clear()  # as an older build would have written it
    findings = [f for f in sqlserver.find(statement) if f.id == "implicit_conversion"]
    assert [(f.node_id, f.severity) for f in findings] == [(3, Severity.WARNING)]
    assert "[UsersBad].[DisplayName]" in findings[0].evidence["column"]


def test_implicit_conversion_quiet_without_conversions(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "KeyLookup.sqlplan", "implicit_conversion")
    # parameter-side CONVERT_IMPLICIT in seek predicates is harmless: never a warning
    _quiet(corpus_dir, "clustered_index_seek.sqlplan", "implicit_conversion")


# --- spill ------------------------------------------------------------------------------------------


def test_spill_hash(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "HashSpillDetails.sqlplan", "spill")
    assert [(f.node_id, f.severity) for f in findings] == [(2, Severity.WARNING), (6, Severity.WARNING)]
    assert findings[0].evidence["writes_to_tempdb_pages"] == 10040


def test_spill_over_500_mb_is_critical(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "spill_plan.sqlplan", "spill")
    assert [(f.node_id, f.severity) for f in findings] == [(11, Severity.CRITICAL)]


def test_exchange_spill(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "excellent-parallel-spill.sqlplan", "spill")
    assert {f.node_id for f in findings} == {0, 2, 4}
    assert all("ExchangeSpillDetails" in f.evidence["kinds"] for f in findings)


def test_spill_quiet(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "KeyLookup.sqlplan", "spill")
    _quiet(corpus_dir, "many_to_many_merge_plan.sqlplan", "spill")


# --- missing_index ----------------------------------------------------------------------------------


def test_missing_index_high_impact_is_warning(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "case_predicate_plan.sqlplan", "missing_index")
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert findings[0].evidence["equality_columns"] == ["DisplayName"]


def test_missing_index_low_impact_is_info(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "eager_index_spool_plan.sqlplan", "missing_index")
    assert findings and all(f.severity == Severity.INFO for f in findings)
    assert all(f.evidence["impact"] < sqlserver.MISSING_INDEX_WARNING_IMPACT for f in findings)


def test_missing_index_quiet(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "KeyLookup.sqlplan", "missing_index")


# --- no_join_predicate, columns_without_statistics, unmatched_indexes -----------------------------------


def test_no_join_predicate(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "missing-join-predicate.sqlplan", "no_join_predicate")
    assert [(f.node_id, f.severity) for f in findings] == [(1, Severity.WARNING)]
    _quiet(corpus_dir, "KeyLookup.sqlplan", "no_join_predicate")
    _quiet(corpus_dir, "nested_loops.sqlplan", "no_join_predicate")


def test_columns_without_statistics(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "columns_with_no_statistics.sqlplan", "columns_without_statistics")
    assert [(f.node_id, f.severity) for f in findings] == [(2, Severity.WARNING)]
    assert findings[0].evidence["columns"]
    _quiet(corpus_dir, "KeyLookup.sqlplan", "columns_without_statistics")


def test_unmatched_indexes(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "unmatched_index.sqlplan", "unmatched_indexes")
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert findings[0].evidence["indexes"]
    _quiet(corpus_dir, "KeyLookup.sqlplan", "unmatched_indexes")


# --- key_lookup ---------------------------------------------------------------------------------------


def test_key_lookup_dominating_cost(corpus_dir: Path) -> None:
    for name, node_id in (("KeyLookup.sqlplan", 5), ("key_lookup_plan.sqlplan", 4)):
        findings = _findings(corpus_dir, name, "key_lookup")
        assert [(f.node_id, f.severity) for f in findings] == [(node_id, Severity.WARNING)], name
        assert findings[0].evidence["cost_share"] >= sqlserver.KEY_LOOKUP_COST_SHARE


def test_cheap_lookups_do_not_fire(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "convert_implicit_plan.sqlplan", "key_lookup")  # 35 % of the cost
    _quiet(corpus_dir, "Not_showing_Seek_Predicates.sqlplan", "key_lookup")  # 20 %
    _quiet(corpus_dir, "hqp_so__how_unsung_am_i.sqlplan", "key_lookup")  # 0.1 %
    _quiet(corpus_dir, "rid_lookup.sqlplan", "key_lookup")  # 71 % of a 0.01-cost statement


# --- memory_grant -------------------------------------------------------------------------------------


def test_memory_grant_engine_warning(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "cte_multi_ref_plan.sqlplan", "memory_grant")
    assert [f.evidence.get("GrantWarningKind") for f in findings] == ["Excessive Grant"]


def test_memory_grant_mostly_unused(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "serially-parallel.sqlplan", "memory_grant")
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert findings[0].evidence["used_fraction"] < sqlserver.UNUSED_GRANT_MAX_USED_FRACTION


def test_memory_grant_quiet(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "KeyLookup.sqlplan", "memory_grant")  # 1 MB grant, 7 % used: too small to matter
    _quiet(corpus_dir, "spill_plan.sqlplan", "memory_grant")  # 10 GB grant, 94 % used


def test_memory_grant_wait(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "hqp_so__inequality_index.sqlplan", "memory_grant_wait")
    assert [f.severity for f in findings] == [Severity.WARNING]
    _quiet(corpus_dir, "spill_plan.sqlplan", "memory_grant_wait")


# --- eager_index_spool ------------------------------------------------------------------------------


def test_eager_index_spool(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "eager_index_spool_plan.sqlplan", "eager_index_spool")
    assert [(f.node_id, f.severity) for f in findings] == [(5, Severity.WARNING)]


def test_other_spools_do_not_fire(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "index_delete.sqlplan", "eager_index_spool")  # eager *table* spool
    _quiet(corpus_dir, "row-count-spool.sqlplan", "eager_index_spool")
    _quiet(corpus_dir, "cte_multi_ref_plan.sqlplan", "eager_index_spool")  # lazy table spool


# --- scalar_udf, table_variable ---------------------------------------------------------------------


def test_scalar_udf(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "udf_plan.sqlplan", "scalar_udf")
    assert [(f.node_id, f.severity) for f in findings] == [(0, Severity.WARNING)]
    assert findings[0].evidence["functions"] == ["[StackOverflow2013].[dbo].[TotalScore]"]


def test_table_valued_function_is_not_a_scalar_udf(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "tvf_plan.sqlplan", "scalar_udf")
    _quiet(corpus_dir, "KeyLookup.sqlplan", "scalar_udf")


def test_table_variable(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "table_variable_plan.sqlplan", "table_variable")
    # SQL Server 2022 estimated the 3 rows right (deferred compilation): information, not a warning
    assert [(f.node_id, f.severity) for f in findings] == [(0, Severity.INFO)]
    assert findings[0].evidence["table"] == "@t"


def test_table_variable_reported_once_per_statement(corpus_dir: Path) -> None:
    for statement in _statements(corpus_dir, "supr__plan121.sqlplan"):
        tables = [f.evidence["table"] for f in sqlserver.find(statement) if f.id == "table_variable"]
        assert len(tables) == len(set(tables))


def test_table_variable_quiet(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "tvf_plan.sqlplan", "table_variable")
    _quiet(corpus_dir, "table_variable_plan.sqlplan", "table_variable", at_least=Severity.WARNING)


# --- forced_serialization -----------------------------------------------------------------------------


def test_forced_serialization_by_udf(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "udf_plan.sqlplan", "forced_serialization")
    assert [(f.severity, f.evidence["reason"]) for f in findings] == [
        (Severity.WARNING, "TSQLUserDefinedFunctionsNotParallelizable")
    ]


def test_forced_serialization_on_cheap_statement_is_info(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "compile_memory_exceeded_plan.sqlplan", "forced_serialization")
    assert [f.severity for f in findings] == [Severity.INFO]


def test_forced_serialization_quiet_for_settings_and_editions(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "cte_multi_ref_plan.sqlplan", "forced_serialization")  # MaxDOPSetToOne
    _quiet(corpus_dir, "issue_39.sqlplan", "forced_serialization")  # Express edition
    _quiet(corpus_dir, "KeyLookup.sqlplan", "forced_serialization")


# --- parameter_sniffing -------------------------------------------------------------------------------


def test_parameter_sniffing(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "param-sniffing-posttypeid2.sqlplan", "parameter_sniffing")
    assert [f.severity for f in findings] == [Severity.WARNING]
    evidence = findings[0].evidence
    assert evidence["parameters"] == [{"name": "@VoteTypeId", "compiled": "(4)", "runtime": "(2)"}]
    assert evidence["estimate_ratio"] >= sqlserver.SNIFFING_ESTIMATE_RATIO


def test_parameter_sniffing_quiet(corpus_dir: Path) -> None:
    # values differ but every estimate is close: a different value, not a different plan need
    _quiet(corpus_dir, "assert.sqlplan", "parameter_sniffing")
    # compiled for NULL (local variables) in an actual plan: estimates stayed within 10x
    _quiet(corpus_dir, "spill-warning.sqlplan", "parameter_sniffing")
    # same compiled and runtime values
    _quiet(corpus_dir, "key_lookup_plan.sqlplan", "parameter_sniffing")


# --- compile_timeout, compile_memory_limit --------------------------------------------------------------


def test_compile_timeout(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "batch_hash_table_build.sqlplan", "compile_timeout")
    assert [f.severity for f in findings] == [Severity.WARNING]
    cheap = _findings(corpus_dir, "adaptive_join.sqlplan", "compile_timeout")
    assert [f.severity for f in cheap] == [Severity.INFO]


def test_compile_memory_limit(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "compile_memory_exceeded_plan.sqlplan", "compile_memory_limit")
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert findings[0].evidence["compile_memory_kb"]


def test_compile_limits_quiet(corpus_dir: Path) -> None:
    for rule_id in ("compile_timeout", "compile_memory_limit"):
        _quiet(corpus_dir, "columns_with_no_statistics.sqlplan", rule_id)  # GoodEnoughPlanFound
        _quiet(corpus_dir, "KeyLookup.sqlplan", rule_id)


# --- parallel_skew ----------------------------------------------------------------------------------


def test_parallel_skew(corpus_dir: Path) -> None:
    findings = _findings(corpus_dir, "encoding-mismatch/parallel-skew.sqlplan", "parallel_skew")
    assert [(f.node_id, f.severity) for f in findings] == [(3, Severity.WARNING), (4, Severity.WARNING)]
    assert findings[0].evidence["busiest_share"] == 1.0 and findings[0].evidence["dop"] == 4


def test_parallel_skew_quiet(corpus_dir: Path) -> None:
    _quiet(corpus_dir, "nci_plan_2012.sqlplan", "parallel_skew")  # DOP 2, 54/46 split
    _quiet(corpus_dir, "batch_mode.sqlplan", "parallel_skew")
    _quiet(corpus_dir, "KeyLookup.sqlplan", "parallel_skew")  # serial


@pytest.mark.parametrize("rule_id", sqlserver.RULE_IDS)
def test_rule_ids_are_snake_case(rule_id: str) -> None:
    assert rule_id == rule_id.lower() and " " not in rule_id
