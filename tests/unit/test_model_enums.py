"""Kinds and severities are defined once (planmon.model) and behave as the strings stored."""

from __future__ import annotations

import json

from planmon.model import KINDS, SEVERITIES, RegressionKind, Severity


def test_severities_rank_least_first() -> None:
    assert [s.value for s in SEVERITIES] == ["info", "low", "medium", "high", "critical"]
    assert Severity.CRITICAL.rank > Severity.HIGH.rank > Severity.MEDIUM.rank > Severity.LOW.rank
    assert Severity.LOW.rank > Severity.INFO.rank == 0  # below the impact floor: known, never interrupts


def test_members_are_the_stored_strings() -> None:
    assert {RegressionKind.PLAN_CHANGE: 1}["plan_change"] == 1  # dict keys from the repository match
    assert json.dumps({Severity.HIGH: RegressionKind.SAME_PLAN}) == '{"high": "same_plan"}'
    assert f"{RegressionKind.ERROR_PRONE}" == "error_prone"
    assert len(KINDS) == len(set(KINDS)) == 6
