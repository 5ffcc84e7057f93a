"""Where the shared plan corpus is: $PLANMON_CORPUS, else ../shared/corpus beside the project.

Used at collection time (to parametrize tests by corpus file) and by the ``corpus_dir`` fixture.
Under ``CI`` a missing corpus is an error, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MISSING = "the plan corpus is missing: set PLANMON_CORPUS or place it at ../shared/corpus"


def corpus_path() -> Path | None:
    configured = os.environ.get("PLANMON_CORPUS")
    candidate = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "corpus"
    return candidate if candidate.is_dir() else None


def corpus_files(folder: str, suffixes: Iterable[str], *, exclude_parts: Iterable[str] = ()) -> list[str]:
    """Paths (relative to ``<corpus>/<folder>``) of the plan files there, for parametrization.

    Empty when the corpus is absent (the tests then skip), except under CI, where that is an error.
    """
    root = corpus_path()
    if root is None:
        if os.environ.get("CI"):
            raise RuntimeError(MISSING + " (CI is set: corpus tests must run)")
        return []
    base = root / folder
    wanted = tuple(suffixes)
    excluded = set(exclude_parts)
    return sorted(
        str(path.relative_to(base))
        for path in base.rglob("*")
        if path.is_file() and path.suffix in wanted and not excluded & set(path.relative_to(base).parts)
    )
