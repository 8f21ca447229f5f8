"""Shortcut disagreement: where a binary-supervised and a location-supervised model disagree.

A binary classifier can score an image on its spurious feature (Saab et al. 2022, Sec. 3.2: the chest tube of a
pneumothorax X-ray); a model supervised with location labels is pushed to score it on the abnormality itself. On
an image that the two models place very differently (one ranks it among the most abnormal of the pool, the other
among the least), one of them is reading something the other is not: the binary model's shortcut, or a
location-model error. Either way the image's location label is informative, so the MONAI Label strategy
``disagreement`` offers these images to the annotator first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

#: the ways :func:`rank_by_disagreement` compares the two models
METHODS = ("rank", "logit", "probability")

__all__ = ["percentile_ranks", "rank_by_disagreement", "shortcut_disagreement"]


def _probabilities(name: str, values: float | Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array < 0.0) or np.any(array > 1.0):
        raise ValueError(f"{name}: probabilities must be finite and in [0, 1], got {array.ravel()[:5].tolist()}")
    return array


def shortcut_disagreement(binary_probability: float | Sequence[float] | np.ndarray,
                          location_probability: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """``|p_binary - p_location|`` per image, in [0, 1].

    Args:
        binary_probability: the binary model's probability that the image is abnormal.
        location_probability: the location-supervised model's image-level probability (its ``score``, Sec. 3.3.2).

    Raises:
        ValueError: naming the argument when a value is outside [0, 1] or the shapes differ.
    """
    binary = _probabilities("binary_probability", binary_probability)
    location = _probabilities("location_probability", location_probability)
    if binary.shape != location.shape:
        raise ValueError(f"binary_probability has shape {binary.shape} but location_probability has shape "
                         f"{location.shape}")
    return np.abs(binary - location)


def percentile_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each value's rank in the pool, scaled to [0, 1] (0 the lowest, 1 the highest; ties share their mean rank;
    a pool of one gets 0.5)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 1:
        return np.full(1, 0.5)
    return (rankdata(array, method="average") - 1.0) / (array.size - 1.0)


def standardized_logits(values: Sequence[float] | np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``logit(p)`` of each probability (clipped to [eps, 1 - eps]), standardised over the pool (zero mean, unit
    standard deviation; all zeros when the pool holds one value)."""
    p = np.clip(np.asarray(values, dtype=np.float64), eps, 1.0 - eps)
    logits = np.log(p) - np.log1p(-p)
    spread = logits.std()
    return (logits - logits.mean()) / spread if spread > 0 else np.zeros_like(logits)


def rank_by_disagreement(binary: Mapping[str, float], location: Mapping[str, float],
                         method: str = "logit") -> list[dict[str, float | str]]:
    """Images ordered by decreasing disagreement between the two models; ties keep the image ids' sorted order.

    Args:
        binary: image id -> the binary model's probability.
        location: image id -> the location model's probability; must hold the same ids.
        method: how the two models are compared over the pool:

            - ``"logit"`` (default): ``|z_binary - z_location|`` with :func:`standardized_logits`;
            - ``"rank"``: ``|q_binary - q_location|`` with :func:`percentile_ranks`;
            - ``"probability"``: the raw gap, :func:`shortcut_disagreement`.

            The two models' probabilities are rarely on one scale (a pixel-wise model's ``mean`` readout of a small
            lesion stays near 0), which swamps the raw gap; ranks remove the scale but spread every group's
            members evenly, so concordant images of one group can be as far apart as discordant ones; standardised
            logits keep the groups' separation (``scripts/measure_disagreement.py``, docs/label.md).

    Returns:
        One ``{"id", "disagreement", "binary_probability", "location_probability", "binary_rank",
        "location_rank"}`` per image (ranks as :func:`percentile_ranks`).

    Raises:
        ValueError: when the two mappings hold different image ids (the missing ones are named), a probability is
            outside [0, 1], or ``method`` is unknown.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if set(binary) != set(location):
        missing = sorted(set(binary) ^ set(location))
        raise ValueError(f"binary and location scores must cover the same images; unmatched: {missing[:5]}")
    ids = sorted(binary)
    p_binary = _probabilities("binary_probability", [binary[i] for i in ids])
    p_location = _probabilities("location_probability", [location[i] for i in ids])
    q_binary, q_location = percentile_ranks(p_binary), percentile_ranks(p_location)
    if method == "rank":
        scores = np.abs(q_binary - q_location)
    elif method == "logit":
        scores = np.abs(standardized_logits(p_binary) - standardized_logits(p_location))
    else:
        scores = shortcut_disagreement(p_binary, p_location)
    order = np.argsort(-scores, kind="stable")
    return [{"id": ids[k], "disagreement": float(scores[k]), "binary_probability": float(p_binary[k]),
             "location_probability": float(p_location[k]), "binary_rank": float(q_binary[k]),
             "location_rank": float(q_location[k])} for k in order]
