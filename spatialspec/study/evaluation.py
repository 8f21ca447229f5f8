"""A trained run's test evaluation for every image score of a study in one pass over the test split (Saab et al.
2022, Sec. 3.3.2: an image score is a readout of the network's probability map, so one forward pass serves them all).

The bundles' ``evaluate.yaml`` reads out one score (its ``score`` setting) in the evaluator's postprocessing
(:class:`~spatialspec.transforms.ImageScored`, the last transform) and reports the robust-AUROC figures of the test
split (:class:`~spatialspec.handlers.RobustAUROC`, ``test_robust_auroc``). :func:`evaluate_scores` runs that workflow
once for the study's last score and reads every other score out of the same probability maps, with the same
transform at another ``method``, into a :class:`~spatialspec.handlers.RobustAUROC` of its own that writes nothing to
the engine (so ``metrics.csv`` is what a pass of the last score alone writes). Where a workflow is not of that shape,
each score gets a pass of its own, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spatialspec.metrics.robust_auroc import FIGURE_NAMES

from .predictions import image_ids

if TYPE_CHECKING:
    from monai.bundle import ConfigWorkflow

__all__ = ["ScoreEvaluation", "evaluate_scores", "TEST_METRIC"]

#: the evaluator metric of ``evaluate.yaml`` holding the test figures (its ``metric_details`` hold score, y and s)
TEST_METRIC = "test_robust_auroc"


@dataclass(frozen=True)
class ScoreEvaluation:
    """The test evaluation of one image score.

    Args:
        score: the score (``mean``, ``max``, ``topk:K``).
        figures: every figure of :func:`spatialspec.metrics.subgroup_aurocs` on the test split.
        y_pred: the image scores, shape (n_test,).
        y: the image labels, shape (n_test,).
        s: the spurious labels, shape (n_test,).
        ids: the images' identifiers (:func:`spatialspec.study.predictions.image_ids`).
        seconds: the wall time of the test pass that read the score out (0 for a score read out of another score's
            pass).
    """

    score: str
    figures: dict[str, float]
    y_pred: np.ndarray
    y: np.ndarray
    s: np.ndarray
    ids: list[str]
    seconds: float


def evaluate_scores(make_workflow: Callable[[str], ConfigWorkflow], scores: Sequence[str]
                    ) -> dict[str, ScoreEvaluation]:
    """Evaluate every score of ``scores`` on the test split, in one pass when the workflow allows it (see the module
    docstring).

    Args:
        make_workflow: builds the (not yet initialised) evaluation workflow of a score, e.g. ``evaluate.yaml`` merged
            after the run's train configs with ``score`` set.
        scores: the image scores.

    Returns:
        the evaluation of each score, by score.
    """
    results: dict[str, ScoreEvaluation] = {}
    remaining = list(dict.fromkeys(scores))
    while remaining:
        started = time.perf_counter()
        workflow = make_workflow(remaining[-1])
        workflow.initialize()
        engine = workflow.parser.get_parsed_content("validate#evaluator")
        readouts = _attach_readouts(workflow, engine, remaining[:-1])
        workflow.run()
        details = engine.state.metric_details[TEST_METRIC]
        figures = {name: float(engine.state.metrics[f"test_{name}"]) for name in FIGURE_NAMES}
        collected = {remaining[-1]: (figures, details)}
        collected.update({score: (readout.metric_fn.aggregate(), readout.metric_fn.get_buffer())
                          for score, readout in readouts.items()})
        entries = workflow.parser.get_parsed_content("validate#data")
        workflow.finalize()
        seconds = time.perf_counter() - started
        for score, (figures, buffers) in collected.items():
            y_pred, y, s = (b.numpy() for b in buffers)
            results[score] = ScoreEvaluation(score, {name: float(figures[name]) for name in FIGURE_NAMES}, y_pred, y,
                                             s, image_ids(entries, y, s), seconds if score == remaining[-1] else 0.0)
        remaining = [score for score in remaining if score not in results]
    return results


def _attach_readouts(workflow: ConfigWorkflow, engine: Any, scores: Sequence[str]) -> dict[str, Any]:
    """Per score of ``scores``, a :class:`~spatialspec.handlers.RobustAUROC` collecting that score (read out of the
    probability maps the workflow's own score reads) with the image and spurious labels, updated on every
    ``ITERATION_COMPLETED`` of ``engine`` and never attached as an engine metric. Empty when ``scores`` is, or when
    the workflow's postprocessing does not end with the one :class:`~spatialspec.transforms.ImageScored` that writes
    the score its ``test_robust_auroc`` reads."""
    if not scores:
        return {}
    from ignite.engine import Events

    from spatialspec.handlers import RobustAUROC
    from spatialspec.transforms import ImageScored

    metrics = workflow.parser.get_parsed_content("validate#additional_metrics")
    handler = metrics.get(TEST_METRIC) if isinstance(metrics, Mapping) else None
    transforms = getattr(workflow.parser.get_parsed_content("validate#postprocessing"), "transforms", None)
    if not isinstance(handler, RobustAUROC) or not transforms:
        return {}
    last = transforms[-1]
    if not isinstance(last, ImageScored) or list(last.output_keys) != [handler.score_key] \
            or sum(isinstance(t, ImageScored) for t in transforms) != 1:
        return {}
    readouts = {}
    for score in scores:
        scorer = ImageScored(last.keys, method=score, channel=last.scorer.channel, output_keys=last.output_keys,
                             batched=last.scorer.batched, allow_missing_keys=last.allow_missing_keys)
        readout = RobustAUROC(score_key=handler.score_key, label_key=handler.label_key,
                              spurious_key=handler.spurious_key, output_transform=_readout(scorer, handler.score_key))
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _, r=readout: r.reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, readout.iteration_completed)
        readouts[score] = readout
    return readouts


def _readout(scorer: Callable, key: str) -> Callable[[Any], Any]:
    """The engine output's image scores under ``scorer`` (a collated dict, or a decollated list of dicts), as one
    tensor."""
    import torch

    def read(output: Any) -> Any:
        items = output if isinstance(output, Sequence) and not isinstance(output, (str, dict)) else [output]
        return torch.cat([torch.as_tensor(scorer(item)[key]).reshape(-1) for item in items])

    return read
