"""Built-in probes: their SQL files follow the include/sql conventions and pass the probe guard."""

from __future__ import annotations

import re

import pytest

from planmon.engines import get_engine
from planmon.probes.builtin import builtin_probes
from planmon.sql import MARKER, sql_root

PROBE_FILES = sorted(sql_root().glob("*/probes/*.sql"))


def test_every_engine_has_a_connectivity_probe_and_its_feature_probes() -> None:
    probes = {probe.name: probe for probe in builtin_probes()}
    assert set(probes["builtin.connectivity"].sql) == {"postgres", "mysql", "sqlserver"}
    assert set(probes["builtin.query_store_state"].sql) == {"sqlserver"}
    assert set(probes["builtin.pg_stat_statements_present"].sql) == {"postgres"}
    assert set(probes["builtin.pg_stat_statements_fill"].sql) == {"postgres"}
    assert set(probes["builtin.performance_schema_state"].sql) == {"mysql"}
    used = {(engine, name) for spec in builtin_probes() for engine in spec.sql for name in [spec.name]}
    assert len(used) == len(PROBE_FILES)  # every file belongs to exactly one built-in on one engine


@pytest.mark.parametrize("path", PROBE_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_probe_file_has_header_and_passes_the_probe_guard(path: object) -> None:
    text = path.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    header, _, body = text.partition(MARKER)
    for line in ("reads:", "minimum version:", "permission:"):
        assert re.search(rf"(?m)^--\s*{line}\s*\S", header), line
    engine = path.parent.parent.name  # type: ignore[attr-defined]
    assert get_engine(engine).classify_probe(MARKER + body) == (True, "read-only query")
