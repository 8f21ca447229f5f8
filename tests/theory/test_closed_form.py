"""Closed forms of Appendix B against independent computations: gamma(r) by dilating a block and counting pixels,
eq. (7) as the variance of a three-component Gaussian mixture, eq. (13) as the MI of the 2 x 2 joint table,
condition (8) as the vertex of the quadratic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from spatialspec.data import SyntheticParams
from spatialspec.theory import (
    Condition8,
    closed_form_measures,
    condition_8,
    gamma,
    mi_closed_form,
    specificity_distance,
    spurious_rate,
    variance_closed_form,
)


def counted_gamma(n: int, a: int, h: int) -> float:
    """a^2 over the number of pixels within distance h (|i-k| < h, |j-l| < h) of an a x a block centred in a large
    canvas, with the canvas then cut to n x n around the block: the paper's min(n, a + 2(h - 1)) square."""
    canvas = n + 4 * h
    mask = np.zeros((canvas, canvas), bool)
    start = (canvas - a) // 2
    mask[start:start + a, start:start + a] = True
    dilated = ndimage.binary_dilation(mask, structure=np.ones((2 * h - 1, 2 * h - 1), bool))
    rows = np.flatnonzero(dilated.any(axis=1))
    side = min(n, rows.max() - rows.min() + 1)
    return a * a / side**2


def mixture_variance(g: float, w: float, mu_a: float, mu_s: float, sigma: float) -> float:
    """Var of X over pixels with Ytilde = 1: a mixture of N(mu_a) (weight g), N(mu_s) (w (1-g)) and N(0) (rest)."""
    weights = np.array([g, w * (1 - g), (1 - w) * (1 - g)])
    means = np.array([mu_a, mu_s, 0.0])
    second = float(np.sum(weights * (sigma**2 + means**2)))
    return second - float(np.sum(weights * means)) ** 2


def table_mi(g: float, w: float, base: float = math.e) -> float:
    """I(S; Y) from the joint table P(S=s, Y=y | Ytilde=1), summed cell by cell with math.log."""
    joint = {(1, 1): 0.0, (0, 1): g, (1, 0): w * (1 - g), (0, 0): (1 - w) * (1 - g)}
    p_s = {s: joint[s, 0] + joint[s, 1] for s in (0, 1)}
    p_y = {y: joint[0, y] + joint[1, y] for y in (0, 1)}
    total = 0.0
    for (s, y), p in joint.items():
        if p > 0:
            total += p * math.log(p / (p_s[s] * p_y[y]), base)
    return total


def random_params(rng: np.random.Generator) -> tuple[int, int, int, float, float, float]:
    n = int(rng.integers(4, 80))
    a = int(rng.integers(1, n))
    b = int(rng.integers(1, n - a + 1))
    return n, a, b, float(rng.normal(0, 5)), float(rng.normal(0, 10)), float(rng.uniform(0.1, 3))


# ---------------------------------------------------------------------------------------------------- gamma


def test_specificity_distance_floor_and_ceil():
    assert specificity_distance(40, 3) == 13 and specificity_distance(40, 3, "ceil") == 14
    assert specificity_distance(40, 8) == specificity_distance(40, 8, "ceil") == 5
    assert specificity_distance(40, 2.5) == 16
    assert specificity_distance(40, 41, "ceil") == 1
    with pytest.raises(ValueError, match="r=41"):
        specificity_distance(40, 41)
    with pytest.raises(ValueError, match="resolution r"):
        specificity_distance(40, 0)
    with pytest.raises(ValueError, match="rounding"):
        specificity_distance(40, 2, "round")


@pytest.mark.parametrize("rounding", ["floor", "ceil"])
def test_gamma_equals_counted_pixels(rounding):
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(2, 60))
        a = int(rng.integers(1, n + 1))
        r = float(rng.choice([rng.integers(1, n + 1), rng.uniform(1, n)]))
        h = math.floor(n / r) if rounding == "floor" else math.ceil(n / r)
        if h < 1:
            continue
        assert gamma(r, n, a, rounding) == pytest.approx(counted_gamma(n, a, h), abs=1e-12), (n, a, r)


def test_gamma_endpoints_and_paper_values():
    # gamma(1) = P(Y = 1) = a^2 / n^2 and gamma(n) = 1 (Appendix B.1), for either rounding
    for rounding in ("floor", "ceil"):
        assert gamma(1, 40, 8, rounding) == 64 / 1600
        assert gamma(40, 40, 8, rounding) == 1.0
    # n = 40, a = 8: r = 8 gives h = 5 and an 8 + 8 = 16 pixel square; r = 3 gives h = 13 (floor) or 14 (ceil)
    assert gamma(8, 40, 8) == 64 / 16**2
    assert gamma(3, 40, 8) == 64 / 32**2 and gamma(3, 40, 8, "ceil") == 64 / 34**2


def test_floor_and_ceil_coincide_exactly_when_r_divides_n():
    n, a = 40, 8
    for r in range(1, n + 1):
        same = gamma(r, n, a) == gamma(r, n, a, "ceil")
        both_cover = a + 2 * (n // r - 1) >= n
        assert same == (n % r == 0 or both_cover), r


def test_spurious_rate():
    assert spurious_rate(40, 8, 12) == 144 / 1536 == 0.09375  # the value Appendix B.1 quotes
    assert spurious_rate(40, 8, 12, rho=0.5) == 0.5 * 144 / 1536
    with pytest.raises(ValueError, match="rho"):
        spurious_rate(40, 8, 12, rho=2)


# ---------------------------------------------------------------------------------------------------- eq. (7)


def test_variance_equals_mixture_variance_and_rearranged_quadratic():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n, a, b, mu_a, mu_s, sigma = random_params(rng)
        w = spurious_rate(n, a, b)
        for g in (a * a / n**2, float(rng.uniform()), 1.0):
            value = variance_closed_form(g, w, mu_a, mu_s, sigma)
            assert value == pytest.approx(mixture_variance(g, w, mu_a, mu_s, sigma), rel=1e-9, abs=1e-9)
            # the rearranged form of Appendix B.1
            k = (mu_a - mu_s * w) ** 2
            quad = -k * g**2 + (k + mu_s**2 * w * (w - 1)) * g + sigma**2 + mu_s**2 * w * (1 - w)
            assert value == pytest.approx(quad, rel=1e-9, abs=1e-9)


def test_variance_at_segmentation_is_sigma_squared_and_vectorised():
    assert variance_closed_form(1.0, 0.3, 2.0, -10.0, 1.7) == pytest.approx(1.7**2, abs=1e-12)
    gs = np.linspace(0.04, 1, 7)
    out = variance_closed_form(gs, 0.09375, 2.0, -10.0, 1.0)
    assert isinstance(out, np.ndarray) and out.shape == (7,)
    assert out == pytest.approx([mixture_variance(g, 0.09375, 2.0, -10.0, 1.0) for g in gs], abs=1e-12)


# ---------------------------------------------------------------------------------------------------- eq. (13)


def test_mi_equals_joint_table_mi():
    rng = np.random.default_rng(2)
    for _ in range(300):
        n, a, b, *_ = random_params(rng)
        w = spurious_rate(n, a, b)
        for g in (a * a / n**2, float(rng.uniform(0.001, 0.999))):
            assert mi_closed_form(g, w) == pytest.approx(table_mi(g, w), rel=1e-9, abs=1e-12)
            assert mi_closed_form(g, w, base=2) == pytest.approx(table_mi(g, w, 2), rel=1e-9, abs=1e-12)


def test_mi_zero_at_segmentation_and_without_spurious_feature():
    assert mi_closed_form(1.0, 0.2) == 0.0
    assert mi_closed_form(0.3, 0.0) == pytest.approx(0.0, abs=1e-15)


def test_mi_maximum_lies_below_064():
    # Appendix B.2: the MI measure, as a function of gamma, peaks at gamma* < 0.64 for any w
    gs = np.linspace(1e-4, 1 - 1e-4, 20001)
    for w in np.linspace(0.01, 0.99, 50):
        assert gs[np.argmax(mi_closed_form(gs, w))] < 0.64


# ---------------------------------------------------------------------------------------------------- condition (8)


def test_condition_8_lhs_is_the_vertex_of_eq7():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n, a, b, mu_a, mu_s, sigma = random_params(rng)
        w = spurious_rate(n, a, b)
        cond = condition_8(w, mu_a, mu_s, a * a / n**2)
        # vertex of the parabola through three points of eq. (7)
        g = np.array([0.0, 0.5, 1.0])
        v = variance_closed_form(g, w, mu_a, mu_s, sigma)
        second = v[0] - 2 * v[1] + v[2]  # = A / 2 for eq. (7) = A g^2 + B g + C
        vertex = 0.5 - (v[2] - v[0]) / (4 * second)  # -B / (2 A)
        assert cond.lhs == pytest.approx(vertex, rel=1e-7, abs=1e-9)
        assert cond.holds == (vertex <= a * a / n**2)


def test_condition_8_paper_values_and_degenerate_cases():
    # Appendix B.1: n = 40, a = 8, b = 12, mu_a = 2, mu_s = -10: w = 0.09375, LHS about 0.01 < 0.04
    cond = condition_8(0.09375, 2.0, -10.0, 0.04)
    assert isinstance(cond, Condition8) and cond.holds and cond.rhs == 0.04
    assert round(cond.lhs, 2) == 0.01
    assert condition_8(0.2, 2.0, 10.0, 0.04).lhs == -math.inf  # mu_a = mu_s w: linear and decreasing
    assert not condition_8(0.2, 0.0, 0.0, 0.04).holds  # constant variance


def test_closed_form_measures_for_params():
    params = SyntheticParams(n=30, a=6, b=9, mu_a=1.5, mu_s=-7.0, sigma=2.0, rho=0.5)
    out = closed_form_measures(params, 6, "ceil")
    g = 36 / (6 + 2 * 4) ** 2
    w = 81 / (900 - 36)
    assert out["gamma"] == pytest.approx(g) and out["w"] == pytest.approx(w)
    assert out["var_closed"] == pytest.approx(mixture_variance(g, w, 1.5, -7.0, 2.0), abs=1e-9)
    assert out["mi_closed"] == pytest.approx(table_mi(g, w), abs=1e-12)
    assert closed_form_measures(params, 6, use_rho=True)["w"] == pytest.approx(0.5 * w)
