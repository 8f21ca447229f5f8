"""The spatial-specificity measures of the synthetic data model side by side: closed form (Appendix B) and empirical
(Sec. 3.3.2, Fig. 3a), one record per spatial specificity r, with condition (8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spatialspec.data.synthetic import SyntheticParams
from spatialspec.levels import SpecificityLevel

from .closed_form import Condition8, closed_form_measures, condition_8, gamma, specificity_distance, spurious_rate
from .empirical import MeasureArrays, empirical_measures, synthetic_arrays

__all__ = ["PAPER_RESOLUTIONS", "default_resolutions", "synthetic_condition_8", "theory_measures"]

#: the resolutions of the paper's Table 2 (n = 40)
PAPER_RESOLUTIONS = (1, 2, 4, 20, 40)


def default_resolutions(n: int) -> list[int]:
    """The paper's resolutions (1, 2, 4, 20, 40) that fit an n x n image, and always r = n (segmentation)."""
    return sorted({r for r in PAPER_RESOLUTIONS if r <= n} | {int(n)})


def synthetic_condition_8(params: SyntheticParams, rounding: str = "floor", use_rho: bool = False) -> Condition8:
    """Condition (8) of Appendix B.1 for the data model ``params``: w = b^2 / (n^2 - a^2) (times rho if
    ``use_rho``), gamma(1) = a^2 / n^2."""
    w = spurious_rate(params.n, params.a, params.b, params.rho if use_rho else 1.0)
    return condition_8(w, params.mu_a, params.mu_s, gamma(1, params.n, params.a, rounding))


def _number(r: float) -> int | float:
    return int(r) if float(r).is_integer() else float(r)


def theory_measures(resolutions: Sequence[float], params: SyntheticParams | None = None, samples: int = 2000,
                    seed: int = 0, rounding: str = "floor", use_rho: bool = False, base: float | None = None,
                    arrays: MeasureArrays | None = None) -> list[dict[str, Any]]:
    """Closed-form and empirical variance and MI measures at each spatial specificity r (Sec. 3.3, Appendix B).

    Args:
        resolutions: the values of r, each 0 < r <= n (``ceil`` also accepts r > n, which is r = n).
        params: the synthetic data model (the paper's by default).
        samples: number of training images generated (``generate_split`` with m = samples, split ``training``).
        seed: generator seed.
        rounding: ``"floor"`` (Sec. 3.1, the transforms' labels) or ``"ceil"`` (Appendix B), used by both the
            closed form and the empirical Ytilde.
        use_rho: scale the closed form's w by rho (the appendix assumes rho = 1).
        base: logarithm base of the MI measures (natural by default).
        arrays: precomputed images and masks, instead of generating ``samples`` of them.

    Returns:
        one dict per r with ``r``, ``gamma``, ``var_closed``, ``mi_closed``, ``var_empirical``, ``mi_empirical`` and
        ``condition_8`` (whether condition (8) holds for ``params``; the same for every r).

    Raises:
        ValueError: naming the bad r, rounding or parameter.
    """
    params = params or SyntheticParams()
    resolutions = list(resolutions)
    if not resolutions:
        raise ValueError("resolutions: at least one r is needed")
    for r in resolutions:
        specificity_distance(params.n, r, rounding)  # validates r and rounding before any generation
    holds = synthetic_condition_8(params, rounding, use_rho).holds
    arrays = arrays if arrays is not None else synthetic_arrays(params, samples, seed)
    empirical = empirical_measures(arrays, [SpecificityLevel("dilate", _number(r)) for r in resolutions], rounding,
                                   base)
    records = []
    for r, emp in zip(resolutions, empirical):
        closed = closed_form_measures(params, r, rounding, use_rho, base)
        records.append({"r": _number(r), "gamma": closed["gamma"], "var_closed": closed["var_closed"],
                        "mi_closed": closed["mi_closed"], "var_empirical": emp["var_empirical"],
                        "mi_empirical": emp["mi_empirical"], "condition_8": holds})
    return records
