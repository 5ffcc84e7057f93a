"""Plan rules: engine-neutral ones (``common``) plus each engine's own (``rules/<engine>.py``).

``find_all`` is the one entry point; engine modules are imported lazily and one that is not
installed simply contributes nothing.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import cast

from planmon.plans.model import Engine, Finding, PlanStatement
from planmon.plans.rules.common import RULES as COMMON_RULES

EngineFind = Callable[[PlanStatement], list[Finding]]


def find_all(statement: PlanStatement, engine: Engine) -> list[Finding]:
    """Every finding for ``statement``: worst first, then by node id (statement-level findings last).

    A finding reported twice (same id, node and message, e.g. by a common and an engine rule) is kept
    once; findings that differ in their message (two warnings on one operator) are all kept.
    """
    findings: list[Finding] = []
    for rule in COMMON_RULES:
        findings.extend(rule(statement))
    engine_find = _engine_find(engine)
    if engine_find is not None:
        findings.extend(engine_find(statement))
    if not findings:  # most statements
        return findings
    unique: dict[tuple[str, int | None, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.id, finding.node_id, finding.message), finding)
    return sorted(unique.values(), key=_sort_key)


def _sort_key(finding: Finding) -> tuple[int, int, int, str]:
    node_missing = finding.node_id is None
    return (-int(finding.severity), int(node_missing), finding.node_id or 0, finding.id)


@functools.cache  # one import attempt per engine and process: a missing module stays missing
def _engine_find(engine: Engine) -> EngineFind | None:
    module_name = f"planmon.plans.rules.{engine}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return cast(EngineFind, module.find)
