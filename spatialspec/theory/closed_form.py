"""Closed forms of the two spatial-specificity measures on the synthetic data model (Saab et al., Appendix B).

With Ytilde the supervision at spatial specificity r (Sec. 3.1) and Y, S the abnormal and spurious masks of the
synthetic model (Sec. 3.2.2), Appendix B writes both measures as functions of two pixel probabilities:

* gamma(r) = P(Y_ij = 1 | Ytilde_ij = 1) = a^2 / min(n, a + 2 (h - 1))^2, where h is the "within h pixels" distance
  of the label construction (Ytilde_ij = 1 iff some Y_kl = 1 has |i - k| < h and |j - l| < h);
* w = P(S_ij = 1 | Y_ij = 0) = b^2 / (n^2 - a^2).

Then the variance measure Var[X_ij | Ytilde_ij = 1] is eq. (7), the MI measure I(S_ij; Y_ij | Ytilde_ij = 1) is
eq. (13), and the variance measure decreases (quadratically) in r under condition (8).

**floor or ceil.** Sec. 3.1 builds Ytilde with h = floor(n / r), the construction of the ``dilate:R`` level
(:func:`spatialspec.transforms.dilate_supervision`); Appendix B's gamma(r) writes h = ceil(n / r). Both are supported
through ``rounding`` (``"floor"``, the default, matches the labels). They give the same h exactly when n / r is an
integer (every r that divides n, e.g. r = 1, 2, 4, 5, 8, 10, 20, 40 for n = 40), and the same gamma also when both
squares already cover the image (a + 2 (floor(n / r) - 1) >= n); otherwise ``ceil`` dilates one pixel more per side
and gives a smaller gamma.

**Approximations of the appendix, kept as written.** gamma(r) ignores the image border: near the border the
positive square is cut, so the pooled gamma of sampled images is a little larger than the formula for intermediate
r (it is exact at r = 1, where Ytilde covers the image, and at r = n, where Ytilde = Y). w is the rate of the
paper's training split, rho = 1 (P(s = 1 | y = 1) = 1); with rho < 1 the pixel rate is rho * w (see
:func:`spurious_rate`). Logarithms are natural (MI in nats): the appendix writes an unspecified ``log``; pass
``base=2`` for bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from spatialspec.data.synthetic import SyntheticParams

__all__ = [
    "ROUNDINGS",
    "specificity_distance",
    "gamma",
    "spurious_rate",
    "variance_closed_form",
    "mi_closed_form",
    "Condition8",
    "condition_8",
    "closed_form_measures",
]

ROUNDINGS = ("floor", "ceil")


def _check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    return rounding


def specificity_distance(size: int, r: float, rounding: str = "floor") -> int:
    """The distance h of the label construction (Sec. 3.1): Ytilde_ij = 1 iff some Y_kl = 1 has |i - k| < h (and
    likewise for columns); the dilation half-width is h - 1.

    ``floor`` computes h = floor(size / r) exactly as :func:`spatialspec.transforms.dilate_supervision` does
    (``size // r``); ``ceil`` computes h = ceil(size / r), Appendix B's gamma(r).

    Raises:
        ValueError: if ``r`` is not a finite number > 0, if ``rounding`` is unknown, or if h < 1 (r > size with
            ``floor``: an empty window).
    """
    _check_rounding(rounding)
    if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) or not (
            math.isfinite(r) and r > 0):
        raise ValueError(f"resolution r must be a finite number > 0, got {r!r}")
    h = int(size // r) if rounding == "floor" else int(math.ceil(size / r))
    if h < 1:
        raise ValueError(f"resolution r={r} exceeds the image size {size}; the largest is {size}")
    return h


def gamma(r: float, n: int, a: int, rounding: str = "floor") -> float:
    """gamma(r) = P(Y_ij = 1 | Ytilde_ij = 1) = a^2 / min(n, a + 2 (h - 1))^2 (Appendix B.1), h from
    :func:`specificity_distance`. gamma(1) = a^2 / n^2 = P(Y_ij = 1) and gamma(n) = 1.

    Raises:
        ValueError: for an invalid ``r`` or ``rounding``, or unless 1 <= a <= n.
    """
    if not 1 <= a <= n:
        raise ValueError(f"the abnormal block side a={a} must satisfy 1 <= a <= n={n}")
    h = specificity_distance(n, r, rounding)
    side = min(n, a + 2 * (h - 1))
    return a * a / (side * side)


def spurious_rate(n: int, a: int, b: int, rho: float = 1.0) -> float:
    """w = P(S_ij = 1 | Y_ij = 0) on abnormal images: b^2 / (n^2 - a^2) (Appendix B.1, the paper's rho = 1).

    The appendix derives w for rho = 1, where every abnormal training image carries the spurious block; ``rho``
    scales it to rho * b^2 / (n^2 - a^2), the rate when only a fraction rho of them does. The default reproduces
    the appendix.

    Raises:
        ValueError: unless 1 <= a < n, b >= 1 and 0 <= rho <= 1.
    """
    if not 1 <= a < n:
        raise ValueError(f"the abnormal block side a={a} must satisfy 1 <= a < n={n}")
    if b < 1:
        raise ValueError(f"the spurious block side b={b} must be >= 1")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho!r}")
    return rho * b * b / (n * n - a * a)


def _out(value: np.ndarray) -> float | np.ndarray:
    return float(value) if np.ndim(value) == 0 else value


def variance_closed_form(gamma_r: ArrayLike, w: ArrayLike, mu_a: float, mu_s: float, sigma: float
                         ) -> float | np.ndarray:
    """Eq. (7) of Appendix B.1, the variance measure Var[X_ij | Ytilde_ij = 1]:

    sigma^2 + mu_a^2 g (1 - g) + mu_s^2 w (1 - g) (1 - w (1 - g)) - 2 mu_a mu_s w g (1 - g),  g = gamma(r).

    Vectorised over ``gamma_r`` and ``w`` (numpy broadcasting); returns a float for scalar input.
    """
    g, w = np.asarray(gamma_r, dtype=np.float64), np.asarray(w, dtype=np.float64)
    value = (sigma**2 + mu_a**2 * g * (1 - g) + mu_s**2 * w * (1 - g) * (1 - w * (1 - g))
             - 2 * mu_a * mu_s * w * g * (1 - g))
    return _out(value)


def mi_closed_form(gamma_r: ArrayLike, w: ArrayLike, base: float | None = None) -> float | np.ndarray:
    """Eq. (13) of Appendix B.2, the MI measure I(S_ij; Y_ij | Ytilde_ij = 1):

    w (1 - g) log(1 / (1 - g)) + (1 - w)(1 - g) log((1 - w) / (g + (1 - w)(1 - g))) + g log(1 / (g + (1 - w)(1 - g))),

    with 0 log(.) = 0 (so g = 1 gives 0). Natural logarithm (nats) unless ``base`` is given (2 for bits).
    Vectorised over ``gamma_r`` and ``w``; returns a float for scalar input.
    """
    from scipy.special import xlogy  # scipy when computed: the command line's parser imports this package

    g, w = np.asarray(gamma_r, dtype=np.float64), np.asarray(w, dtype=np.float64)
    p_s0 = g + (1 - w) * (1 - g)  # eq. (11), P(S_ij = 0 | Ytilde_ij = 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (-xlogy(w * (1 - g), 1 - g)
                 + xlogy((1 - w) * (1 - g), 1 - w) - xlogy((1 - w) * (1 - g), p_s0)
                 - xlogy(g, p_s0))
    if base is not None:
        value = value / math.log(base)
    return _out(value)


@dataclass(frozen=True)
class Condition8:
    """Condition (8) of Appendix B.1: ``lhs <= rhs`` means the variance measure decreases quadratically in r.

    Attributes:
        lhs: 1/2 - w (1 - w) / 2 * (mu_s / (mu_a - mu_s w))^2, the gamma that maximises eq. (7).
        rhs: gamma(1) = a^2 / n^2.
        holds: ``lhs <= rhs``.
    """

    lhs: float
    rhs: float
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return {"lhs": self.lhs, "rhs": self.rhs, "holds": self.holds}


def condition_8(w: float, mu_a: float, mu_s: float, gamma_1: float) -> Condition8:
    """Check condition (8) of Appendix B.1: 1/2 - w (1 - w) / 2 * (mu_s / (mu_a - mu_s w))^2 <= gamma(1).

    When mu_a = mu_s w, eq. (7) is linear in gamma with slope -mu_s^2 w (1 - w): the left side is then -inf
    (the condition holds) if that slope is negative, and NaN (the condition does not hold: the variance does not
    change with r) if it is zero.
    """
    denom = mu_a - mu_s * w
    spread = w * (1 - w) * mu_s**2
    if denom != 0:
        lhs = 0.5 - w * (1 - w) / 2 * (mu_s / denom) ** 2
    else:
        lhs = -math.inf if spread > 0 else math.nan
    return Condition8(lhs=float(lhs), rhs=float(gamma_1), holds=bool(lhs <= gamma_1))


def closed_form_measures(params: SyntheticParams, r: float, rounding: str = "floor", use_rho: bool = False,
                         base: float | None = None) -> dict[str, float]:
    """gamma(r), eq. (7) and eq. (13) for the synthetic data model ``params`` at spatial specificity ``r``.

    Args:
        params: the data model (Sec. 3.2.2); uses n, a, b, mu_a, mu_s, sigma (and rho if ``use_rho``).
        r: the spatial specificity, 0 < r <= n.
        rounding: ``"floor"`` (Sec. 3.1, the labels) or ``"ceil"`` (Appendix B).
        use_rho: scale w by rho (the appendix assumes rho = 1; default ``False`` reproduces it).
        base: logarithm base of the MI (natural by default).

    Returns:
        ``{"gamma": ..., "w": ..., "var_closed": ..., "mi_closed": ...}``.
    """
    g = gamma(r, params.n, params.a, rounding)
    w = spurious_rate(params.n, params.a, params.b, params.rho if use_rho else 1.0)
    return {"gamma": g, "w": w, "var_closed": variance_closed_form(g, w, params.mu_a, params.mu_s, params.sigma),
            "mi_closed": mi_closed_form(g, w, base)}
