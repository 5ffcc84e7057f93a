"""Mutated and truncated real plans: parse_plan either succeeds or raises PlanParseError, quickly.

Anything else (KeyError, ValueError, RecursionError, lxml errors leaking out) is a parser bug: a
collector would crash on one odd plan instead of reporting it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planmon.errors import PlanParseError
from planmon.plans.fingerprint import shape_hash
from planmon.plans.parse import PARSER_MODULES, parse_plan
from planmon.plans.rules import find_all

# Small real plans of each engine (read from the corpus at test time, never copied).
SEEDS: dict[str, tuple[str, ...]] = {
    "sqlserver": ("simple.sqlplan", "clustered_index_scan.sqlplan", "StmtCond.sqlplan"),
    "postgres": (
        "pev2__from-text_48_memoize.txt",
        "pev2__test20_insert_modifytable.json",
        "pev2__psql-frame_text_dbeaver.txt",
    ),
    "mysql": ("mysql_doc.json", "unofficialmysqlguide_example_36.json", "mariadb_doc.json"),
}

_MODULES: dict[str, str] = {str(engine): module for engine, module in PARSER_MODULES.items()}

Mutation = tuple[str, float, int]  # operation, relative position, byte value


def _seed_bytes(corpus_dir: Path) -> list[bytes]:
    seeds: list[bytes] = []
    for engine, names in SEEDS.items():
        if importlib.util.find_spec(_MODULES[engine]) is None:
            continue
        seeds.extend((corpus_dir / engine / name).read_bytes() for name in names)
    return seeds


def _mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    buffer = bytearray(data)
    for operation, where, value in mutations:
        position = min(int(where * len(buffer)), max(len(buffer) - 1, 0))
        if operation == "truncate":
            del buffer[position:]
        elif not buffer:
            buffer.append(value)
        elif operation == "flip":
            buffer[position] ^= value or 0x01
        elif operation == "delete":
            del buffer[position : position + 1 + value % 8]
        else:
            buffer[position:position] = bytes([value]) * (1 + value % 4)
    return bytes(buffer)


_mutations = st.lists(
    st.tuples(
        st.sampled_from(("flip", "delete", "insert", "truncate")),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def seeds(corpus_dir: Path) -> list[bytes]:
    found = _seed_bytes(corpus_dir)
    if not found:
        pytest.skip("no plan parser installed")
    return found


@settings(
    max_examples=150,
    deadline=2000,  # ms per input: a parser stuck in a pathological loop fails here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data(), mutations=_mutations)
def test_mutated_plans_fail_cleanly(
    seeds: list[bytes], data: st.DataObject, mutations: list[Mutation]
) -> None:
    original = data.draw(st.sampled_from(seeds))
    mutated = _mutate(original, mutations)
    try:
        plan = parse_plan(mutated, source="fuzz")
    except PlanParseError:
        return
    for statement in plan.statements:  # a plan that parses must be usable downstream too
        shape_hash(statement)
        find_all(statement, plan.engine)


def test_every_truncation_point_of_a_small_plan(seeds: list[bytes]) -> None:
    """Deterministic companion: cut one small plan of each engine at regular points."""
    for original in seeds[::3]:
        for cut in range(0, len(original), max(len(original) // 40, 1)):
            try:
                parse_plan(original[:cut], source="truncated")
            except PlanParseError:
                continue
