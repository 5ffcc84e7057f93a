from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared plan corpus ($PLANMON_CORPUS, else ../shared/corpus), as in tests/unit/plans."""
    configured = os.environ.get("PLANMON_CORPUS")
    path = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "corpus"
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail("the plan corpus is missing: set PLANMON_CORPUS or place it at ../shared/corpus")
        pytest.skip("plan corpus not found (set PLANMON_CORPUS or place it at ../shared/corpus)")
    return path
