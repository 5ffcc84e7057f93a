"""The compiled showplan reader (``_showplan_ops.pyx``) gives exactly what the Python reader gives.

``showplan.py`` is the reference; the compiled module repeats its statement and operator reading in C
for speed (ADR 0004). These tests are what keeps the two from drifting apart: every SQL Server plan of
the corpus, attribute values mutated in the ways real and damaged plans differ, and byte-level damage
must give equal models, or the same PlanParseError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from planmon.errors import PlanParseError
from planmon.plans import showplan
from planmon.plans.model import PlanStatement, Predicate
from planmon.plans.parse import parse_plan
from tests.harness.corpus import corpus_files

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SQLSERVER_PLANS = corpus_files("sqlserver", (".sqlplan", ".xml"))
NOT_BUILT = "the compiled showplan reader is not built here (no C compiler at install?); see ADR 0004"

compiled_only = pytest.mark.skipif(
    not showplan.COMPILED_READER and not os.environ.get("CI"), reason=NOT_BUILT
)


def test_the_compiled_reader_is_in_use_under_ci() -> None:
    """CI measures and ships the compiled reader: a build that silently fell back must not pass."""
    if not os.environ.get("CI") and not showplan.COMPILED_READER:
        pytest.skip(NOT_BUILT)
    assert showplan.COMPILED_READER, (
        "the compiled showplan reader did not build or is stale: run make install"
    )


def test_the_build_pins_the_lxml_the_lock_installs() -> None:
    """The module reads lxml's element structs: it is built against the exact lxml release it runs with."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build_pins = {
        requirement.split("==")[0].lower(): requirement.split("==")[1]
        for requirement in pyproject["build-system"]["requires"]
        if "==" in requirement
    }
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {package["name"]: package["version"] for package in lock["package"]}
    assert build_pins["lxml"] == locked["lxml"]


def _flatten(statements: list[PlanStatement]) -> list[tuple[Any, ...]]:
    """Every field of every statement and operator (repr, so 1 and 1.0 differ), tree shape included."""
    rows: list[tuple[Any, ...]] = []
    for statement in statements:
        fields = {
            f.name: getattr(statement, f.name) for f in dataclasses.fields(statement) if f.name != "root"
        }
        rows.append(("statement", repr(fields)))
        for node in statement.nodes():
            node_fields = {
                f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.name != "children"
            }
            rows.append(("operator", repr(node_fields), [child.node_id for child in node.children]))
    return rows


def _read_both(data: bytes) -> tuple[Any, Any]:
    """(compiled result, Python result): flattened statements, or the PlanParseError's text."""
    results = []
    for use_python in (False, True):
        try:
            with showplan.python_reader() if use_python else contextlib.nullcontext():
                plan = parse_plan(data, engine="sqlserver")
        except PlanParseError as exc:
            results.append(("PlanParseError", str(exc)))
        else:
            results.append(_flatten(plan.statements))
    return results[0], results[1]


@compiled_only
@pytest.mark.parametrize("name", SQLSERVER_PLANS)
def test_every_corpus_plan_reads_the_same(corpus_dir: Path, name: str) -> None:
    compiled, python = _read_both((corpus_dir / "sqlserver" / name).read_bytes())
    assert compiled == python


# Attribute values that real, old or damaged plans carry: numbers in every showplan spelling, booleans
# of both showplan versions, non-ASCII digits, text, nothing at all.
TRICKY_VALUES = (
    "",
    "0",
    "1",
    "-1",
    "-",
    ".",
    "007",
    "12.5",
    "-0.0",
    ".5",
    "1.",
    "1.5e-006",
    "1E+20",
    "1.#INF",
    "NaN",
    "inf",
    "1_000",
    " 7 ",
    "99999999999999999999999",
    "true",
    "false",
    "True",
    "١٢٣",
    "²",
    "x",
    "Nested Loops",
    "[dbo]",
    "[a]]b]",
    "@tv",
    "#tmp",
    "N'O''Brien' = 5",
)
# Attributes the readers look at, and one they do not.
ATTRIBUTES = (
    "NodeId",
    "PhysicalOp",
    "LogicalOp",
    "EstimateRows",
    "EstimateIO",
    "EstimateCPU",
    "EstimateRebinds",
    "EstimateRewinds",
    "EstimatedTotalSubtreeCost",
    "Parallel",
    "TableCardinality",
    "IsAdaptive",
    "EstimatedRowsRead",
    "Thread",
    "ActualRows",
    "ActualExecutions",
    "ActualElapsedms",
    "ActualCPUms",
    "ActualLogicalReads",
    "ActualRowsRead",
    "ActualScans",
    "ActualExecutionMode",
    "Table",
    "Schema",
    "Database",
    "Index",
    "Alias",
    "IndexKind",
    "Storage",
    "Filtered",
    "Column",
    "ScalarString",
    "ScanType",
    "DegreeOfParallelism",
    "CompileCPU",
    "StatementType",
    "StatementSubTreeCost",
    "QueryHash",
    "GrantedMemory",
    "CpuTime",
    "ProcName",
    "OperationType",
    "Ordered",
    "Lookup",
    "SomethingNew",
)
SEEDS = (  # small plans with actual counters, IF/ELSE, a cursor, USE, seeks and lookups, a spill
    "simple.sqlplan",
    "StmtCond.sqlplan",
    "StmtUseDb.sqlplan",
    "clustered_index_scan.sqlplan",
    "actual-execution-plan.sqlplan",
    "KeyLookup.sqlplan",
    "Keyset_Cursor.sqlplan",
    "HashSpillDetails.sqlplan",
)

Edit = tuple[str, int, str, str]  # operation, element pick, attribute, value


def _edit(data: bytes, edits: list[Edit]) -> bytes:
    """Apply attribute edits to a real plan (elements picked by position among all elements)."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True, resolve_entities=False))
    elements = list(root.iter())
    for operation, pick, attribute, value in edits:
        element = elements[pick % len(elements)]
        if operation == "set":
            element.set(attribute, value)
        elif operation == "delete":
            element.attrib.pop(attribute, None)
        elif operation == "namespaced":
            element.set(f"{{urn:planmon-test}}{attribute}", value)
        else:  # move: the element (and its subtree) becomes the last child of another one
            target = elements[(pick * 7 + len(value)) % len(elements)]
            if element is not root and target is not element and element not in target.iterancestors():
                target.append(element)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


def _seed_bytes(corpus_dir: Path) -> list[bytes]:
    available = set(SQLSERVER_PLANS)
    return [(corpus_dir / "sqlserver" / name).read_bytes() for name in SEEDS if name in available]


@compiled_only
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(min_value=0),
    edits=st.lists(
        st.tuples(
            st.sampled_from(("set", "set", "set", "delete", "namespaced", "move")),
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from(ATTRIBUTES),
            st.sampled_from(TRICKY_VALUES)
            | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_edited_plans_read_the_same(corpus_dir: Path, seed: int, edits: list[Edit]) -> None:
    seeds = _seed_bytes(corpus_dir)
    if not seeds:
        pytest.skip("no seed plans in the corpus")
    data = _edit(seeds[seed % len(seeds)], edits)
    compiled, python = _read_both(data)
    assert compiled == python


@compiled_only
def test_byte_damage_reads_the_same(corpus_dir: Path) -> None:
    """Flipped, dropped and cut bytes: both readers accept the same documents and agree on them."""
    rng = random.Random(20261128)
    seeds = _seed_bytes(corpus_dir)
    for _ in range(300):
        buffer = bytearray(rng.choice(seeds))
        for _edit_number in range(rng.randint(1, 3)):
            position = rng.randrange(len(buffer))
            if rng.random() < 0.5:
                buffer[position] ^= 1 << rng.randrange(7)
            else:
                del buffer[position : position + rng.randint(1, 6)]
        compiled, python = _read_both(bytes(buffer))
        assert compiled == python


@compiled_only
def test_a_stale_or_foreign_build_is_not_used(tmp_path: Path) -> None:
    """A .pyx edited after the build, or another lxml at run time: the Python reader takes over."""
    source = showplan._COMPILED_SOURCE
    assert showplan._load_compiled(source) is not None
    edited = tmp_path / source.name
    edited.write_text(source.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert showplan._load_compiled(edited) is None
    assert showplan._load_compiled(source, lxml_version="0.0.0") is None


@compiled_only
def test_a_model_class_that_changed_is_refused() -> None:
    """The fast constructors must list exactly the model's fields, or the module refuses to load."""
    from planmon.plans import _showplan_ops  # type: ignore[attr-defined]

    with pytest.raises(ImportError, match="does not match the model class Predicate"):
        _showplan_ops._Constructor(Predicate, ("text", "kind"))

    @dataclasses.dataclass
    class Unslotted:
        kind: str

    with pytest.raises(ImportError, match="slotted"):
        _showplan_ops._Constructor(Unslotted, ("kind",))
