"""Ignite handler that puts every robust-AUROC figure into ``engine.state.metrics`` (and so into MLflow)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler

from spatialspec.metrics.robust_auroc import FIGURE_NAMES
from spatialspec.metrics.robust_auroc_metric import RobustAUROCMetric

__all__ = ["RobustAUROC"]


def _collect(data: Any, key: str, where: str) -> torch.Tensor:
    """Stack ``key`` from a collated dict or a decollated list of dicts."""
    items = data if isinstance(data, Sequence) and not isinstance(data, (str, dict)) else [data]
    values = []
    for item in items:
        if not isinstance(item, dict) or key not in item:
            present = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise KeyError(f"RobustAUROC: key '{key}' is missing from engine.state.{where} (it holds {present})")
        values.append(torch.as_tensor(item[key]).reshape(-1))
    return torch.cat(values)


class RobustAUROC(IgniteMetricHandler):
    """Robust and subgroup AUROC of a :class:`~monai.engines.SupervisedEvaluator` (Sec. 3.3.2, 5.1).

    Image scores come from ``engine.state.output`` (``score_key``, written by
    :class:`spatialspec.transforms.ImageScored` in the evaluator's postprocessing); the image label and the spurious
    label are read from ``engine.state.batch`` (``label_key``, ``spurious_key``), where the extra keys stay.

    Attached under ``name``, the handler stores the robust AUROC as ``name`` and every other figure of
    :func:`spatialspec.metrics.subgroup_aurocs` next to it: attached as ``val_robust_auroc`` it also writes
    ``val_overall_auroc``, ``val_worst_pair_auroc`` and ``val_auroc_y0s1_y1s0``, ...; under another name ``X`` the
    others are ``X_overall_auroc``, ... A subgroup with one class only gives NaN and a warning, never an error.

    ``key`` picks the figure stored under ``name`` itself, the one an evaluator's ``key_val_metric`` selects
    checkpoints on. ``key="overall_auroc"`` attached as ``val_overall_auroc`` checkpoints on the overall validation
    AUROC (the binary model of App. A.1; ISIC's validation split has no robust subset) and still writes
    ``val_robust_auroc``, ``val_worst_pair_auroc``, ...: the prefix is ``name`` without its ``key`` suffix.

    Args:
        score_key: key of the image score in the engine output.
        label_key: key of the image label y in the batch.
        spurious_key: key of the spurious label s in the batch.
        output_transform: optional callable mapping ``engine.state.output`` to the scores; overrides ``score_key``.
        save_details: also store the per-image (score, y, s) buffers in ``engine.state.metric_details``.
        key: the figure stored under the attached name (one of
            :data:`spatialspec.metrics.robust_auroc.FIGURE_NAMES`); default ``robust_auroc``.
        prefix: the prefix of every figure's own name, e.g. ``"val_"``: attached as ``val_worst_group_auroc`` with
            ``key="worst_pair_auroc"`` and ``prefix="val_"`` it stores the worst-pair AUROC under the attached name
            and every figure, that one included, as ``val_<figure>`` (the worst-group model-selection rule of
            :mod:`spatialspec.handlers.selection`). ``None``: the attached name without its ``key`` suffix.
        bootstrap: resamples of the stratified bootstrap interval of every figure (0, the default, computes none;
            see :class:`spatialspec.metrics.RobustAUROCMetric`). With N > 0 every figure's 95% bounds are stored next
            to it with the suffixes ``_ci_low`` and ``_ci_high`` (``test_robust_auroc_ci_low``, ...), so an
            ``MLFlowHandler`` logging ``engine.state.metrics`` logs them too.
        bootstrap_seed: seed of the resampling generator.

    Example (bundle config; MONAI attaches ``additional_metrics`` only when a ``key_val_metric`` is also given)::

        key_val_metric:
          val_loss: {_target_: IgniteMetricHandler, loss_fn: "@loss",
                     output_transform: "$monai.handlers.from_engine(['pred', 'label'])"}
        additional_metrics:
          val_robust_auroc: {_target_: spatialspec.handlers.RobustAUROC, score_key: score}
    """

    def __init__(
        self,
        score_key: str = "score",
        label_key: str = "y",
        spurious_key: str = "s",
        output_transform: Callable | None = None,
        save_details: bool = True,
        key: str = "robust_auroc",
        prefix: str | None = None,
        bootstrap: int = 0,
        bootstrap_seed: int = 0,
    ) -> None:
        if key not in FIGURE_NAMES:
            raise ValueError(f"RobustAUROC: key must be one of {', '.join(FIGURE_NAMES)}, got {key!r}")
        self.key = key
        self.prefix = prefix
        self.score_key = score_key
        self.label_key = label_key
        self.spurious_key = spurious_key
        transform = output_transform or (lambda output: _collect(output, score_key, "output"))
        super().__init__(metric_fn=RobustAUROCMetric(bootstrap=bootstrap, bootstrap_seed=bootstrap_seed),
                         output_transform=transform, save_details=save_details)

    def iteration_completed(self, engine: Engine) -> None:
        """Add the batch's scores (from the output) and labels (from the batch)."""
        scores = torch.as_tensor(self._output_transform(engine.state.output)).reshape(-1)
        y = _collect(engine.state.batch, self.label_key, "batch")
        s = _collect(engine.state.batch, self.spurious_key, "batch")
        self.metric_fn(scores, y, s)

    def compute(self) -> dict[str, float]:
        """Every figure as a dict; the per-image buffers go to ``metric_details`` when ``save_details``."""
        result = self.metric_fn.aggregate()
        self._is_reduced = True
        if self.save_details and self._engine is not None and self._name is not None:
            self._engine.state.metric_details[self._name] = self.metric_fn.get_buffer()
        return result

    def completed(self, engine: Engine, name: str) -> None:
        """Store the ``key`` figure (the robust AUROC by default) under ``name`` and the others under names derived
        from it."""
        result = self.compute()
        prefix = self.prefix
        if prefix is None:
            prefix = name[: -len(self.key)] if name.endswith(self.key) else f"{name}_"
        for figure, value in result.items():
            if figure == self.key:
                engine.state.metrics[name] = value
            if figure != self.key or self.prefix is not None:
                engine.state.metrics[prefix + figure] = value
