"""Image-score names (``mean``, ``max``, ``topk:K``) and their parser, free of torch and MONAI so that the command
line checks ``--score`` without importing them. The readouts themselves are :mod:`spatialspec.transforms.scores`
(Sec. 3.3.2), which re-exports these names."""

from __future__ import annotations

__all__ = ["SCORE_METHODS", "parse_score"]

SCORE_METHODS = ("mean", "max", "topk:K")


def parse_score(method: str) -> tuple[str, int | None]:
    """Parse a score name into ``(kind, k)``.

    Raises:
        ValueError: naming the score if it is not ``mean``, ``max`` or ``topk:K`` with K >= 1.
    """
    kind, _, arg = str(method).strip().lower().partition(":")
    if kind in ("mean", "max") and not arg:
        return kind, None
    if kind == "topk":
        try:
            k = int(arg)
        except ValueError:
            raise ValueError(f"score {method!r}: topk needs an integer K, e.g. 'topk:64'") from None
        if k < 1:
            raise ValueError(f"score {method!r}: K must be >= 1")
        return kind, k
    raise ValueError(f"unknown score {method!r}: use one of {', '.join(SCORE_METHODS)}")
