"""The vectorised t tail gives what the per-value one gives, including the edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planmon.analysis.statistics import student_t_sf, student_t_sf_many


def test_the_array_tail_matches_the_scalar_tail() -> None:
    rng = np.random.default_rng(5)
    t = np.concatenate([rng.normal(0, 6, 2000), [0.0, 1e-12, -1e-12, 40.0, -40.0, 1e4]])
    df = np.concatenate([rng.uniform(1, 500, 2000), [1.0, 2.0, 3.0, 1.0, 1.0, 7.0]])
    expected = np.array([student_t_sf(float(a), float(b)) for a, b in zip(t, df, strict=True)])
    assert student_t_sf_many(t, df) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_the_array_tail_handles_infinities_and_huge_degrees_of_freedom() -> None:
    t = np.array([math.inf, -math.inf, 2.0, 2.0])
    df = np.array([5.0, 5.0, math.inf, 2e6])
    normal = 0.5 * math.erfc(2.0 / math.sqrt(2.0))
    assert list(student_t_sf_many(t, df)) == pytest.approx([0.0, 1.0, normal, normal])


def test_known_values_of_the_t_tail() -> None:
    # P(T > 2.015) with 5 degrees of freedom is 0.05; P(T > 12.706) with 1 is 0.025 (t tables)
    assert list(student_t_sf_many(np.array([2.015, 12.706]), np.array([5.0, 1.0]))) == pytest.approx(
        [0.05, 0.025], abs=2e-4
    )
