"""The Airflow pool planmon's per-target tasks run in, created (or resized) from the settings.

planmon_collect's ``collect`` and planmon_probes' ``run_probe`` run in ``PLANMON_TARGETS_POOL``
(``planmon_targets``): a mapped task in a pool that does not exist stays "scheduled" forever, with no
reason in the UI. ``make airflow`` (scripts/airflow-local.sh) and the compose stack's one-shot init
(docker/airflow-init.sh) both run ``python -m planmon.airflow.pools`` after ``airflow db migrate``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from planmon.config import Settings, load_settings
from planmon.errors import PlanmonError

DESCRIPTION = "planmon collection and probes, one slot per target task"


def ensure_targets_pool(settings: Settings) -> tuple[str, int]:
    """Create ``settings.targets_pool`` with ``settings.targets_pool_slots`` slots, or set an existing
    pool to that size; returns (name, slots). Needs Airflow's metadata DB (migrated)."""
    from airflow.models.pool import Pool

    pool = Pool.create_or_update_pool(
        name=settings.targets_pool,
        slots=settings.targets_pool_slots,
        description=DESCRIPTION,
        include_deferred=False,
    )
    return str(pool.pool), int(pool.slots)


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m planmon.airflow.pools",
        description=(
            "Create the Airflow pool planmon's target tasks run in (PLANMON_TARGETS_POOL, default "
            "planmon_targets) with PLANMON_TARGETS_POOL_SLOTS slots (default 8), or resize it. "
            "Run after `airflow db migrate`; safe to re-run."
        ),
    ).parse_args(argv)
    try:
        name, slots = ensure_targets_pool(load_settings())
    except PlanmonError as exc:
        print(f"planmon pools: {exc}", file=sys.stderr)
        return 1
    print(f"Airflow pool {name}: {slots} slots")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
