"""Verification: did the executions after an action get better than the regressed plan?

Post-apply moments come from the repository's runtime stats of the query since the action was
applied, pooled exactly as detection pools them (``analysis.detect.query_moments``); the regressed
and baseline sides are the moments detection stored as the regression's evidence. The test is the
one detection uses, Welch's on pooled moments, in the other direction.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from planmon.analysis.detect import query_moments
from planmon.analysis.statistics import Moments, welch
from planmon.config import Settings

MIN_EXECUTIONS_TO_JUDGE = 2  # Welch's test needs a variance


class Outcome(enum.StrEnum):
    WAITING = "waiting"  # fewer than N executions and less than M minutes since apply
    BETTER = "better"  # significantly faster than the regressed plan: keep
    NOT_BETTER = "not_better"  # not significantly faster: roll back
    INSUFFICIENT = "insufficient"  # M minutes passed with too few executions to tell: roll back


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    post: Moments | None
    regressed: Moments
    baseline: Moments
    p_value: float | None = None
    back_at_baseline: bool = False

    @property
    def keep(self) -> bool:
        return self.outcome is Outcome.BETTER

    def as_dict(self) -> dict[str, Any]:
        def moments(m: Moments | None) -> dict[str, float] | None:
            return None if m is None else {"executions": m.n, "mean": m.mean, "stdev": math.sqrt(m.var)}

        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "post_apply": moments(self.post),
            "regressed": moments(self.regressed),
            "baseline": moments(self.baseline),
            "p_value": self.p_value,
            "back_at_baseline": self.back_at_baseline,
        }


def regression_moments(regression: Mapping[str, Any], settings: Settings) -> tuple[Moments, Moments]:
    """(baseline, regressed) moments from a regression's evidence (means alone when that is missing)."""
    evidence = regression.get("evidence") or {}

    def side(name: str, mean_column: str) -> Moments:
        plan = evidence.get(name) or {}
        mean = plan.get("mean", regression.get(mean_column))
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            raise ValueError(f"regression {regression.get('id')} has no {mean_column}")
        stdev = float(plan.get("stdev") or 0.0)
        executions = float(plan.get("executions") or settings.min_executions)
        return Moments(float(mean), stdev * stdev, executions)

    return side("baseline_plan", "baseline_mean"), side("current_plan", "current_mean")


def post_apply_moments(
    stats: pd.DataFrame, *, target_id: int, query_id: int, applied_at: datetime, now: datetime
) -> Moments | None:
    """The query's moments over runtime stats intervals starting at or after the action."""
    moments = query_moments(stats, start=applied_at, end=now)
    row = moments[(moments["target_id"] == target_id) & (moments["query_id"] == query_id)]
    if row.empty:
        return None
    first = row.iloc[0]
    return Moments(float(first["mean"]), float(first["var"]), float(first["n"]))


def judge(
    post: Moments | None,
    *,
    baseline: Moments,
    regressed: Moments,
    minutes_since_apply: float,
    settings: Settings,
    kind: str = "",
) -> Verdict:
    """Wait for N executions or M minutes, then keep only what is significantly better.
    ``kind``: the regression's, for the ratio ``back_at_baseline`` is judged by (the one it was
    detected at: ``Settings.ratio_of_kind``)."""
    executions = 0.0 if post is None else post.n
    enough = executions >= settings.remediation_verify_executions
    if not enough and minutes_since_apply < settings.remediation_verify_minutes:
        return Verdict(
            Outcome.WAITING,
            f"{executions:.0f} of {settings.remediation_verify_executions} executions since apply",
            post,
            regressed,
            baseline,
        )
    if post is None or executions < MIN_EXECUTIONS_TO_JUDGE:
        reason = (
            f"only {executions:.0f} execution(s) in {minutes_since_apply:.1f} minutes after apply: "
            "too few to show the action helped"
        )
        return Verdict(Outcome.INSUFFICIENT, reason, post, regressed, baseline)
    _, _, p = welch(post, regressed)  # p that the regressed mean is larger than the post-apply mean
    back = post.mean <= baseline.mean * settings.ratio_of_kind(kind)
    summary = (
        f"post-apply mean {post.mean:.0f} over {executions:.0f} executions vs regressed "
        f"{regressed.mean:.0f} and baseline {baseline.mean:.0f} (p={p:.2g})"
    )
    if post.mean < regressed.mean and p <= settings.p_value_max:
        return Verdict(Outcome.BETTER, f"better: {summary}", post, regressed, baseline, p, back)
    return Verdict(Outcome.NOT_BETTER, f"not better: {summary}", post, regressed, baseline, p, back)
