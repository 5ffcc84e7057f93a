"""``run_status``: a collection run is as bad as its worst aspect, over the aspect sets engines report."""

from __future__ import annotations

import pytest

from planmon.collect import run_status
from planmon.engines.base import AspectState, AspectStatus

OK = AspectStatus(AspectState.OK)
NOT_APPLICABLE = AspectStatus(AspectState.NOT_APPLICABLE, hint="PostgreSQL has no plan forcing")


def aspects(**states: AspectStatus) -> dict[str, AspectStatus]:
    recorded = {
        "runtime_stats": OK,
        "query_text": OK,
        "plans": OK,
        "forcing_state": NOT_APPLICABLE,
        "object_definitions": OK,
    }
    return {**recorded, **states}


# What the adapters answered (tests/integration/engines, docs/collection.md), one case per line.
CASES = [
    ("postgres healthy: no forcing is no loss", aspects(), "ok"),
    (
        "sqlserver healthy with Query Store",
        aspects(forcing_state=OK),
        "ok",
    ),
    (
        "postgres killed during plan capture (issue 17)",
        aspects(
            plans=AspectStatus(
                AspectState.ERROR,
                hint="plan capture failed; statistics were still collected",
                detail="server closed the connection unexpectedly",
            )
        ),
        "error",
    ),
    (
        "mariadb without events_statements_history_long",
        aspects(
            plans=AspectStatus(
                AspectState.UNAVAILABLE, hint="enable the events_statements_history_long consumer"
            ),
            forcing_state=AspectStatus(AspectState.NOT_APPLICABLE, hint="MySQL and MariaDB cannot force"),
        ),
        "degraded",
    ),
    (
        "sqlserver without VIEW DATABASE STATE for plans",
        aspects(
            plans=AspectStatus(AspectState.PERMISSION_DENIED, hint="GRANT VIEW DATABASE STATE TO planmon"),
            forcing_state=OK,
        ),
        "degraded",
    ),
    (
        "sqlserver with Query Store off: the plan cache still answers",
        aspects(
            forcing_state=AspectStatus(
                AspectState.UNAVAILABLE, hint="ALTER DATABASE [db] SET QUERY_STORE = ON"
            )
        ),
        "degraded",
    ),
    (
        "index definitions failed after statistics and plans",
        aspects(
            object_definitions=AspectStatus(AspectState.ERROR, hint="index definitions could not be read")
        ),
        "error",
    ),
    (
        "a denied aspect and a failed one: the worst wins",
        aspects(
            plans=AspectStatus(AspectState.PERMISSION_DENIED, hint="GRANT ..."),
            object_definitions=AspectStatus(AspectState.ERROR, hint="index definitions could not be read"),
        ),
        "error",
    ),
    (
        "no pg_stat_statements: nothing collected",
        aspects(
            runtime_stats=AspectStatus(
                AspectState.UNAVAILABLE, hint="CREATE EXTENSION pg_stat_statements in database shop"
            ),
            query_text=AspectStatus(AspectState.UNAVAILABLE, hint="CREATE EXTENSION pg_stat_statements"),
            plans=AspectStatus(AspectState.UNAVAILABLE, hint="plans need statement texts"),
        ),
        "error",
    ),
    (
        "runtime stats denied, everything else fine",
        aspects(runtime_stats=AspectStatus(AspectState.PERMISSION_DENIED, hint="GRANT pg_read_all_stats")),
        "error",
    ),
    ("no aspects recorded at all", {}, "error"),
]


@pytest.mark.parametrize(("case", "recorded", "expected"), CASES, ids=[c[0] for c in CASES])
def test_run_status_is_the_worst_aspect(case: str, recorded: dict[str, AspectStatus], expected: str) -> None:
    assert run_status(recorded) == expected, case


def test_a_hint_never_hides_a_failed_aspect() -> None:
    """Every failed aspect has a hint; the status must not skip aspects that have one."""
    for state in (AspectState.UNAVAILABLE, AspectState.PERMISSION_DENIED, AspectState.ERROR):
        with_hint = aspects(plans=AspectStatus(state, hint="do this"))
        assert run_status(with_hint) != "ok", state
