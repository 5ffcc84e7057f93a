from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def corpus_path() -> Path | None:
    """The shared plan corpus: $PLANMON_CORPUS, else ../shared/corpus beside the project."""
    configured = os.environ.get("PLANMON_CORPUS")
    candidate = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "corpus"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = corpus_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the plan corpus is missing: set PLANMON_CORPUS or place it at ../shared/corpus")
        pytest.skip("plan corpus not found (set PLANMON_CORPUS or place it at ../shared/corpus)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return PROJECT_ROOT / "tests" / "fixtures" / "plans"
