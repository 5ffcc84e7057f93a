"""The statistics detection needs, without SciPy: Welch's t-test on pooled moments and its tail.

Only candidates that already passed the cheap vectorised filters reach these functions; the
``*_many`` variant computes the same tail for a whole array of candidates at once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_EPSILON = 1e-14
_TINY = 1e-300
_MAX_ITERATIONS = 300


class Moments(NamedTuple):
    """Execution-weighted mean, variance and count of one sample (a plan in one window)."""

    mean: float
    var: float
    n: float


def welch(a: Moments, b: Moments) -> tuple[float, float, float]:
    """(t, degrees of freedom, one-sided p) for "b is larger than a" from means, variances and counts.

    A zero-variance pair with different means is maximally significant; identical ones are not.
    """
    mean_a, var_a, n_a = a
    mean_b, var_b, n_b = b
    se2 = var_a / n_a + var_b / n_b
    if se2 <= 0:
        if mean_b > mean_a:
            return math.inf, math.inf, 0.0
        return 0.0, math.inf, 1.0
    t = (mean_b - mean_a) / math.sqrt(se2)
    numerator = se2 * se2
    denominator = 0.0
    if n_a > 1:
        denominator += (var_a / n_a) ** 2 / (n_a - 1)
    if n_b > 1:
        denominator += (var_b / n_b) ** 2 / (n_b - 1)
    df = numerator / denominator if denominator > 0 else math.inf
    return t, df, student_t_sf(t, df)


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (normal tail beyond 1e6 df)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if math.isinf(df) or df > 1e6:
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    x = df / (df + t * t)
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, x)
    return tail if t > 0 else 1.0 - tail


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by the continued fraction (modified Lentz), using the symmetry for fast convergence."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1.0) < _EPSILON:
            break
    return result


def two_proportion_p(errors_a: float, total_a: float, errors_b: float, total_b: float) -> float:
    """One-sided p for "the error rate rose from a to b" (pooled two-proportion z-test)."""
    if total_a <= 0 or total_b <= 0:
        return 1.0
    pooled = (errors_a + errors_b) / (total_a + total_b)
    if pooled <= 0 or pooled >= 1:
        return 0.0 if errors_b / total_b > errors_a / total_a else 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    z = (errors_b / total_b - errors_a / total_a) / se
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def student_t_sf_many(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """``student_t_sf`` over arrays at once: the same continued fraction, iterated on every element
    together until all have converged (detection computes thousands of p-values per run)."""
    t = np.asarray(t, dtype=float)
    df = np.asarray(df, dtype=float)
    p = np.full(t.shape, np.nan)
    p[np.isposinf(t)] = 0.0
    p[np.isneginf(t)] = 1.0
    finite = np.isfinite(t)
    normal = finite & (~np.isfinite(df) | (df > 1e6))
    p[normal] = 0.5 * np.asarray([math.erfc(v / math.sqrt(2.0)) for v in t[normal]])
    exact = finite & ~normal
    if exact.any():
        tt, nu = t[exact], df[exact]
        tail = 0.5 * _incomplete_beta_many(nu / 2.0, np.full(nu.shape, 0.5), nu / (nu + tt * tt))
        p[exact] = np.where(tt > 0, tail, 1.0 - tail)
    return p


def _incomplete_beta_many(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``regularized_incomplete_beta`` element-wise (a, b > 0; x in [0, 1])."""
    result = np.where(x >= 1.0, 1.0, 0.0)
    inside = (x > 0.0) & (x < 1.0)
    a, b, x = a[inside], b[inside], x[inside]
    lgamma = np.vectorize(math.lgamma, otypes=[float])
    log_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * np.log(x) + b * np.log1p(-x)
    direct = x < (a + 1.0) / (a + b + 2.0)
    fraction = _beta_fraction_many(
        np.where(direct, a, b), np.where(direct, b, a), np.where(direct, x, 1.0 - x)
    )
    front = np.exp(log_front) * fraction
    result[inside] = np.where(direct, front / a, 1.0 - front / b)
    return result


def _beta_fraction_many(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    def guard(v: np.ndarray) -> np.ndarray:
        return np.where(np.abs(v) > _TINY, v, _TINY)

    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 / guard(1.0 - qab * x / qap)
    result = d.copy()
    active = np.ones(x.shape, dtype=bool)
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        delta = np.ones_like(x)
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 / guard(1.0 + numerator * d)
            c = guard(1.0 + numerator / c)
            delta = d * c
            result = np.where(active, result * delta, result)
        active &= np.abs(delta - 1.0) >= _EPSILON
        if not active.any():
            break
    return result
