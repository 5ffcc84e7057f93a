"""UI page cost at fleet scale: a page served by planmon's UI vs a bare SELECT of the same rows.

1,000 targets and 10,000 regressions (tests/harness/ui_seed.py) in a SQLite repository. Baseline,
measured in the same run: one bare ``SELECT`` of the same 50-row page (regressions joined to target
and query, by primary key, LIMIT/OFFSET) through SQLAlchemy. planmon: the regressions JSON route and
the rendered regressions and overview pages through FastAPI's test client (routing, login dependency,
the count, JSON or Jinja2 rendering). The ratio is the median time of each over the median baseline;
goal: under 10x, i.e. the page costs the query plus a bounded overhead, not a table scan in Python.

    .venv/bin/python bench/ui_pages.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from planmon.config import Settings  # noqa: E402
from planmon.store import Repository  # noqa: E402
from planmon.store.schema import query, regression, target  # noqa: E402
from planmon.ui.app import create_ui_app  # noqa: E402
from tests.harness.ui_seed import seed_scale  # noqa: E402

GOAL = 10.0
OFFSET = 5000


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    work()  # warm caches and the connection
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(repository_url=f"sqlite:///{home}/planmon.db", home=Path(home))
        repository = Repository.from_settings(settings)
        repository.init_schema()
        seed_scale(repository, targets=1000, regressions=10_000)
        bare = (
            select(
                regression.c.id, regression.c.kind, regression.c.severity, target.c.name, query.c.query_key
            )
            .join(target, target.c.id == regression.c.target_id)
            .join(query, query.c.id == regression.c.query_id)
            .where(regression.c.status == "open")
            .order_by(regression.c.id.desc())
            .limit(50)
            .offset(OFFSET)
        )

        def baseline() -> object:
            with repository.engine.connect() as connection:
                return connection.execute(bare).all()

        client = TestClient(create_ui_app(user_dependency=lambda: "bench", settings_factory=lambda: settings))
        pages = {
            "GET /api/regressions (JSON)": f"/api/regressions?offset={OFFSET}",
            "GET /regressions (HTML)": f"/regressions?offset={OFFSET}",
            "GET / overview (HTML)": "/?offset=500",
        }
        base = median_seconds(baseline, args.repeat)
        print(f"baseline: bare SELECT of one 50-row page at offset {OFFSET}: {base * 1000:.2f} ms")
        worst = 0.0
        for name, path in pages.items():
            assert client.get(path).status_code == 200
            seconds = median_seconds(lambda path=path: client.get(path), args.repeat)  # type: ignore[misc]
            ratio = seconds / base
            worst = max(worst, ratio)
            print(f"{name}: {seconds * 1000:.2f} ms, ratio {ratio:.1f}x the bare SELECT")
        print(f"worst ratio {worst:.1f}x (goal < {GOAL:.0f}x): {'met' if worst < GOAL else 'NOT met'}")
        repository.close()


if __name__ == "__main__":
    main()
