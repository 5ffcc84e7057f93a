"""The shared corpus of real plans: every file parses with auto-detection, and shape_hash agrees with
SQL Server's own QueryPlanHash except for the documented cases below."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from planmon.plans.fingerprint import shape_hash
from planmon.plans.model import Plan
from planmon.plans.parse import PARSER_MODULES, parse_plan, parse_plan_file
from planmon.plans.rules import find_all

_NOT_PLANS = {"SOURCES.md", "README.md"}


def _corpus_files(corpus: Path) -> list[Path]:
    return sorted(
        path
        for path in corpus.rglob("*")
        if path.is_file() and path.name not in _NOT_PLANS and "schema" not in path.relative_to(corpus).parts
    )


_MODULES: dict[str, str] = {str(engine): module for engine, module in PARSER_MODULES.items()}


def _has_parser(engine: str) -> bool:
    return importlib.util.find_spec(_MODULES[engine]) is not None


def _require_parser(engine: str) -> None:
    if not _has_parser(engine):
        pytest.skip(f"the {engine} parser ({_MODULES[engine]}) is not installed")


def test_corpus_has_every_engine(corpus_dir: Path) -> None:
    engines = {path.relative_to(corpus_dir).parts[0] for path in _corpus_files(corpus_dir)}
    assert engines == {"sqlserver", "postgres", "mysql"}


def test_every_corpus_file_parses_with_detection(corpus_dir: Path) -> None:
    """One test over all files (a few hundred): the engine is detected from content, never the folder."""
    failures: list[str] = []
    checked = 0
    for path in _corpus_files(corpus_dir):
        engine = path.relative_to(corpus_dir).parts[0]
        if not _has_parser(engine):
            continue
        plan = parse_plan(path.read_bytes(), source=path.name)
        checked += 1
        if plan.engine != engine:
            failures.append(f"{path.name}: detected {plan.engine}, expected {engine}")
        elif not plan.statements:
            failures.append(f"{path.name}: no statements")
        for statement in plan.statements:
            assert len(shape_hash(statement)) == 16
            find_all(statement, plan.engine)  # rules must run on every real plan without raising
    assert checked > 0
    assert failures == []


# --- QueryPlanHash agreement ---------------------------------------------------------------------------

# Pairs with the SAME QueryPlanHash that planmon deliberately hashes differently.
SAME_QPH_EXCEPTIONS: dict[frozenset[tuple[str, int]], str] = {
    frozenset({("case_predicate_plan.sqlplan", 0), ("leading_wildcard_like_plan.sqlplan", 0)}): (
        "QueryPlanHash ignores how a scan predicate compares ([DisplayName] = CASE ... versus "
        "LIKE N'%...'); planmon keeps the predicate's shape, because a different filter on the same scan "
        "is a different plan to a DBA (SARGability, estimates)"
    ),
    frozenset({("multi-convert.sqlplan", 0), ("scalar-convert-with-index-seek-and-warning.sqlplan", 0)}): (
        "QueryPlanHash ignores the seek comparison ([Id] < ? versus [Id] = ?); planmon keeps it: a range "
        "seek and a singleton seek behave differently"
    ),
    frozenset({("inserted-deleted-scan.sqlplan", 1), ("inserted-deleted-scan.sqlplan", 2)}): (
        "QueryPlanHash treats a trigger's Inserted Scan and Deleted Scan as one operator; planmon keeps the "
        "physical operator name as written"
    ),
}

_NOLOCK = (
    "the statements differ only by a WITH (NOLOCK) table hint, which QueryPlanHash covers but the showplan "
    "XML does not show: nothing in the plan document can tell them apart"
)
_OUTPUT_COLUMNS = (
    "the plans differ only in the columns an operator outputs or computes (OutputList / DefinedValues), "
    "which QueryPlanHash covers; planmon's shape is operators, objects and predicates (the model keeps no "
    "output lists), and the same access paths returning other columns are the same plan for regression "
    "purposes"
)
# Pairs with DIFFERENT QueryPlanHash that planmon hashes the same.
DIFFERENT_QPH_EXCEPTIONS: dict[frozenset[tuple[str, int]], str] = {
    frozenset({("supr__plan54.sqlplan", 20), ("supr__plan54.sqlplan", 53)}): _NOLOCK,
    frozenset({("supr__plan54.sqlplan", 28), ("supr__plan54.sqlplan", 53)}): _NOLOCK,
    frozenset({("supr__plan54.sqlplan", 46), ("supr__plan54.sqlplan", 53)}): _NOLOCK,
    frozenset({("supr__plan54.sqlplan", 53), ("supr__plan54.sqlplan", 65)}): _NOLOCK,
    frozenset({("supr__plan54.sqlplan", 51), ("supr__plan54.sqlplan", 56)}): _OUTPUT_COLUMNS,
    frozenset({("supr__plan54.sqlplan", 52), ("supr__plan54.sqlplan", 64)}): _OUTPUT_COLUMNS,
    frozenset({("assert.sqlplan", 0), ("constant_scan.sqlplan", 0)}): _OUTPUT_COLUMNS,
    frozenset({("supr__plan121.sqlplan", 3), ("supr__plan133.sqlplan", 5)}): (
        "identical plans except the system-generated name of a table variable's primary key "
        "(PK__#B34636D__A429706AAAF60180 vs PK__#B92534A__A429706A330F4B4B), which SQL Server makes up anew "
        "at every compilation; planmon normalises generated constraint names so a recompiled plan keeps its "
        "hash"
    ),
}

# The same plan saved two ways (estimated and actual, or copied between repositories): one hash each.
SAME_PLAN_TWO_WAYS: list[tuple[str, str]] = [
    ("sqlserver/adaptive_join.sqlplan", "sqlserver/adaptive_join_estimated.sqlplan"),
    ("sqlserver/batch_mode.sqlplan", "sqlserver/batch_mode_estimated.sqlplan"),
    ("sqlserver/actual-execution-plan.sqlplan", "sqlserver/estimated-execution-plan.sqlplan"),
    (
        "sqlserver/How_many_upvotes_do_I_have_for_each_tag.sqlplan",
        "sqlserver/hqp_so__How_many_upvotes_do_I_have_for_each_tag.sqlplan",
    ),
    ("sqlserver/top_above_scan_plan.sqlplan", "sqlserver/ps_tests__top_above_scan_plan.sqlplan"),
    ("postgres/pev2__sample_plan1.json", "postgres/pev2__sample_plan1.txt"),
]

Row = tuple[str, int, str, str]  # file, statement index, QueryPlanHash, shape hash


@pytest.fixture(scope="module")
def showplan_rows(corpus_dir: Path) -> list[Row]:
    _require_parser("sqlserver")
    rows: list[Row] = []
    for path in _corpus_files(corpus_dir / "sqlserver"):
        plan: Plan = parse_plan_file(path)
        for statement in plan.statements:
            if statement.engine_plan_hash:
                rows.append((path.name, statement.index, statement.engine_plan_hash, shape_hash(statement)))
    return rows


def _disagreements(rows: list[Row]) -> tuple[int, int, dict[frozenset[tuple[str, int]], bool]]:
    """Count same-QPH and different-QPH pairs; map each disagreeing pair to 'had the same QPH'."""
    same = different = 0
    disagreeing: dict[frozenset[tuple[str, int]], bool] = {}
    for a, b in itertools.combinations(rows, 2):
        pair = frozenset({(a[0], a[1]), (b[0], b[1])})
        if a[2] == b[2]:
            same += 1
            if a[3] != b[3]:
                disagreeing[pair] = True
        else:
            different += 1
            if a[3] == b[3]:
                disagreeing[pair] = False
    return same, different, disagreeing


def test_shape_hash_agrees_with_query_plan_hash(showplan_rows: list[Row]) -> None:
    same, different, disagreeing = _disagreements(showplan_rows)
    assert same >= 80 and different >= 70_000  # the corpus really exercises both directions
    unexpected_split = {p for p, same_qph in disagreeing.items() if same_qph and p not in SAME_QPH_EXCEPTIONS}
    unexpected_merge = {
        p for p, same_qph in disagreeing.items() if not same_qph and p not in DIFFERENT_QPH_EXCEPTIONS
    }
    assert unexpected_split == set(), "same QueryPlanHash, different shape_hash"
    assert unexpected_merge == set(), "different QueryPlanHash, same shape_hash"


def test_documented_exceptions_still_occur(showplan_rows: list[Row]) -> None:
    """Stale exceptions hide regressions: each listed pair must still disagree, in the stated direction."""
    _, _, disagreeing = _disagreements(showplan_rows)
    for pair in SAME_QPH_EXCEPTIONS:
        assert disagreeing.get(pair) is True, sorted(pair)
    for pair in DIFFERENT_QPH_EXCEPTIONS:
        assert disagreeing.get(pair) is False, sorted(pair)


@pytest.mark.parametrize(("first", "second"), SAME_PLAN_TWO_WAYS, ids=lambda name: Path(name).name)
def test_same_plan_saved_two_ways_has_one_hash(corpus_dir: Path, first: str, second: str) -> None:
    _require_parser(first.split("/", maxsplit=1)[0])
    a, b = parse_plan_file(corpus_dir / first), parse_plan_file(corpus_dir / second)
    assert [shape_hash(s) for s in a.statements] == [shape_hash(s) for s in b.statements]
    if a.engine == "sqlserver":
        assert [s.engine_plan_hash for s in a.statements] == [s.engine_plan_hash for s in b.statements]
