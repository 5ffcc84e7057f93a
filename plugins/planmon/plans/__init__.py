"""Plan intelligence: parse SQL Server, PostgreSQL and MySQL plans into one model, fingerprint,
diff and check them. No Airflow here."""

from __future__ import annotations

from planmon.plans.diff import PlanChange, PlanDiff, diff_plans, diff_statements
from planmon.plans.fingerprint import shape_hash, statement_hashes
from planmon.plans.model import (
    ENGINES,
    Engine,
    Finding,
    MissingIndex,
    ObjectRef,
    Parameter,
    Plan,
    PlanNode,
    PlanStatement,
    PlanWarning,
    Predicate,
    Severity,
)
from planmon.plans.parse import detect_engine, engine_name, parse_plan, parse_plan_file
from planmon.plans.rules import find_all

__all__ = [
    "ENGINES",
    "Engine",
    "Finding",
    "MissingIndex",
    "ObjectRef",
    "Parameter",
    "Plan",
    "PlanChange",
    "PlanDiff",
    "PlanNode",
    "PlanStatement",
    "PlanWarning",
    "Predicate",
    "Severity",
    "detect_engine",
    "diff_plans",
    "diff_statements",
    "engine_name",
    "find_all",
    "parse_plan",
    "parse_plan_file",
    "shape_hash",
    "statement_hashes",
]
