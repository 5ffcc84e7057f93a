"""Plan intelligence: parse SQL Server, PostgreSQL and MySQL plans into one model, fingerprint,
diff and check them. No Airflow here."""

from __future__ import annotations

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

__all__ = [
    "ENGINES",
    "Engine",
    "Finding",
    "MissingIndex",
    "ObjectRef",
    "Parameter",
    "Plan",
    "PlanNode",
    "PlanStatement",
    "PlanWarning",
    "Predicate",
    "Severity",
]
