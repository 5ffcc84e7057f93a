"""Verification's judgement of post-apply moments, pure: back at baseline by the ratio the regression
was detected at."""

from __future__ import annotations

import pytest

from planmon.analysis.statistics import Moments
from planmon.config import load_settings
from planmon.remediation.verify import Outcome, judge

SETTINGS = load_settings({})
BASELINE, REGRESSED = Moments(100.0, 25.0, 500.0), Moments(400.0, 400.0, 500.0)


@pytest.mark.parametrize(
    ("kind", "back"), [("plan_change", False), ("same_plan", True), ("plan_unknown", True)]
)
def test_back_at_baseline_uses_the_ratio_the_kind_was_detected_at(kind: str, back: bool) -> None:
    """1.3x the baseline after the action: better than the regression either way, but not back for a
    plan change (detected from PLANMON_PLAN_CHANGE_RATIO, 1.25), back for the others (1.5)."""
    post = Moments(130.0, 100.0, 500.0)
    verdict = judge(
        post, baseline=BASELINE, regressed=REGRESSED, minutes_since_apply=30.0, settings=SETTINGS, kind=kind
    )
    assert verdict.outcome is Outcome.BETTER
    assert verdict.back_at_baseline is back
