"""The harness's CI rule: a PostgreSQL/MariaDB test that skips under CI fails instead."""

from __future__ import annotations

import pytest

PROBE = """
import pytest

@pytest.mark.postgres
def test_needs_postgres():
    pytest.skip("no server here")

def test_plain_skip():
    pytest.skip("fine anywhere")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool) -> pytest.RunResult:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(
        "from collections.abc import Iterator\nimport os\nimport pytest\n"
        "IN_CI = bool(os.environ.get('CI'))\n" + _hook_source()
    )
    pytester.makeini("[pytest]\nmarkers =\n    postgres: x\n")
    pytester.makepyfile(PROBE)
    return pytester.runpytest_subprocess()


def _hook_source() -> str:
    import inspect

    from tests import conftest

    return inspect.getsource(conftest.pytest_runtest_makereport)


def test_skip_becomes_failure_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(failed=1, skipped=1)


def test_skip_stays_skip_outside_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, ci=False)
    result.assert_outcomes(skipped=2)
