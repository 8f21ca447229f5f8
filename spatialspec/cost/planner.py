"""Budget planner (beyond the paper, after its Sec. 4.1 cost model and Sec. 5.2 / Fig. 4 label-budget curves): which
supervision level and how many location labels maximise the expected robust AUROC for a given annotation budget.

The inputs are measured curves of robust AUROC against the number of location-labelled training samples, one per
option (``seg``, ``bbox``, ``seg (ssl)``, ``seg (spl)``, ... from a label-budget study), plus the image-label-only
options (``binary``, ``binary (jtt)``, ...). The planner:

* **prices** ``n`` location labels at a level with :class:`spatialspec.cost.AnnotationCostModel` as the paper does
  (Sec. 4.1): the *extra* cost over image labels, which every option has anyway. ``positive_fraction`` of the ``n``
  images are positive (the paper counts positive images only: ``1.0``, the default, prices every labelled image as
  a positive one, an upper bound); negatives cost nothing extra. Image-label-only options cost nothing extra.
* **interpolates** each curve linearly in ``log n`` between measured budgets (learning curves are close to linear in
  the log of the sample size); it does not extrapolate: below the smallest measured budget an option has no
  expected value (it is "below the measured range"), and above the largest it keeps the largest budget's value
  (no gain is assumed beyond what was measured, so buying more labels than that is never recommended).
* **recommends** the option and ``n`` with the highest expected robust AUROC whose cost fits the budget; ties go to
  the cheaper plan. Within an option the candidates are the measured budgets that fit and the largest affordable
  ``n`` (the interpolated curve is piecewise linear, so its maximum on an interval is at one of these).

Measured records come from a study's ``results.json`` (``spatialspec study ... --location-labels``,
``scripts/reproduce_figure4.py``) or from MLflow runs of a study (:func:`records_from_mlflow`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.levels import parse_level
from spatialspec.stats import nan_mean_std

from .model import AnnotationCostModel

__all__ = ["LabelCurve", "PlanOption", "BudgetPlan", "BudgetPlanner", "curves_from_records", "load_results",
           "records_from_mlflow", "option_name"]


def option_name(level: str, model: str = "pixel") -> str:
    """The name of a plan option: the level, with a non-default model in brackets (``seg (ssl)``, ``binary (jtt)``)."""
    return level if model in ("pixel", None, "") else f"{level} ({model})"


@dataclass(frozen=True)
class LabelCurve:
    """Measured robust (and overall) AUROC of one option against the number of location labels (Sec. 5.2, Fig. 4).

    Args:
        option: the option's name (see :func:`option_name`).
        level: the supervision level whose annotation is paid for (``binary`` for image labels only).
        budgets: the measured numbers of location labels, increasing (one entry, any value, for a ``binary`` level).
        robust: mean robust AUROC at each budget (over seeds).
        robust_std: its standard deviation over seeds.
        overall: mean overall AUROC at each budget (NaN where unknown).
        n_seeds: seeds behind each mean.

    Raises:
        ValueError: naming the field when the arrays differ in length, are empty, or ``budgets`` does not increase.
    """

    option: str
    level: str
    budgets: tuple[int, ...]
    robust: tuple[float, ...]
    robust_std: tuple[float, ...]
    overall: tuple[float, ...]
    n_seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        parse_level(self.level)
        lengths = {len(self.budgets), len(self.robust), len(self.robust_std), len(self.overall), len(self.n_seeds)}
        if len(lengths) != 1 or not self.budgets:
            raise ValueError(f"curve {self.option!r}: budgets, robust, robust_std, overall and n_seeds must have the "
                             f"same, non-zero length")
        if any(b < 1 for b in self.budgets) or any(b2 <= b1 for b1, b2 in zip(self.budgets, self.budgets[1:])):
            raise ValueError(f"curve {self.option!r}: budgets must be increasing integers >= 1, got {self.budgets}")

    @property
    def location_supervised(self) -> bool:
        """Whether the option needs location labels (every level but ``binary``)."""
        return parse_level(self.level).kind != "binary"

    def _interpolate(self, values: Sequence[float], n: float) -> float:
        if not self.location_supervised:
            return float(values[0])
        if n < self.budgets[0]:
            return math.nan
        x = np.log(np.asarray(self.budgets, dtype=float))
        return float(np.interp(math.log(n), x, np.asarray(values, dtype=float)))

    def expected(self, n: float) -> float:
        """Expected robust AUROC with ``n`` location labels (NaN below the smallest measured budget)."""
        return self._interpolate(self.robust, n)

    def expected_std(self, n: float) -> float:
        """The seeds' standard deviation, interpolated like :meth:`expected`."""
        return self._interpolate(self.robust_std, n)

    def expected_overall(self, n: float) -> float:
        """Expected overall AUROC, interpolated like :meth:`expected`."""
        return self._interpolate(self.overall, n)


@dataclass(frozen=True)
class PlanOption:
    """One option of a plan at its best affordable number of location labels.

    Attributes:
        option, level: as in :class:`LabelCurve`.
        location_labels: the number of location-labelled images (``None`` for image labels only, or when nothing in
            the measured range fits the budget).
        cost: the extra annotation cost in dollars (``NaN`` when nothing fits).
        robust_auroc, robust_std, overall_auroc: the expected figures there (``NaN`` when nothing fits).
        feasible: whether the option fits the budget.
        note: why it does not, or ``""``.
    """

    option: str
    level: str
    location_labels: int | None
    cost: float
    robust_auroc: float
    robust_std: float
    overall_auroc: float
    feasible: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class BudgetPlan:
    """The planner's answer: the ``best`` option (``None`` if none fits) and every option, best first."""

    budget: float
    best: PlanOption | None
    options: tuple[PlanOption, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"budget": self.budget, "best": self.best.to_dict() if self.best else None,
                "options": [o.to_dict() for o in self.options]}


class BudgetPlanner:
    """Recommend a supervision level and number of location labels for an annotation budget (see the module doc).

    Args:
        curves: the measured options.
        cost_model: prices clicks (Sec. 4.1; the paper's defaults).
        positive_fraction: share of positive images among the location-labelled ones (``1.0``: all, the paper's
            count of positive images only; e.g. 0.9 for the synthetic data's ``mu_y``).

    Raises:
        ValueError: naming ``positive_fraction`` outside ``(0, 1]``, or ``curves`` when empty or when two share an
            option name.

    Example:
        >>> curves = [LabelCurve("seg", "seg", (10, 100), (0.6, 0.9), (0.0, 0.0), (0.9, 0.95), (3, 3)),
        ...           LabelCurve("binary", "binary", (1,), (0.2,), (0.0,), (0.7,), (3,))]
        >>> plan = BudgetPlanner(curves).plan(budget=50.0)  # a mask costs 44 extra clicks = $1.22
        >>> plan.best.option, plan.best.location_labels
        ('seg', 40)
    """

    def __init__(self, curves: Iterable[LabelCurve], cost_model: AnnotationCostModel | None = None,
                 positive_fraction: float = 1.0) -> None:
        self.curves = list(curves)
        if not self.curves:
            raise ValueError("curves: no measured option to plan with")
        names = [c.option for c in self.curves]
        if len(set(names)) != len(names):
            raise ValueError(f"curves: option names must be unique, got {names}")
        if not (isinstance(positive_fraction, int | float) and 0.0 < positive_fraction <= 1.0):
            raise ValueError(f"positive_fraction must lie in (0, 1], got {positive_fraction!r}")
        self.cost_model = cost_model or AnnotationCostModel()
        self.positive_fraction = float(positive_fraction)

    def cost(self, level: str, n: int) -> float:
        """The extra dollars (over image labels) of location labels at ``level`` for ``n`` images, of which
        ``round(positive_fraction * n)`` are positive."""
        positives = int(round(self.positive_fraction * n))
        return self.cost_model.estimate(level, positives=positives).extra_cost

    def affordable(self, level: str, budget: float) -> int:
        """The largest number of images whose location labels at ``level`` cost at most ``budget`` (capped at
        10**12; huge when the level costs nothing extra)."""
        unit = self.cost(level, 10**6) / 10**6
        if unit <= 0:
            return 10**12
        n = int(min(10**12, math.floor(budget / unit))) + 1
        while n > 0 and self.cost(level, n) > budget + 1e-9:
            n -= 1
        return n

    def _option(self, curve: LabelCurve, budget: float) -> PlanOption:
        nan = math.nan
        if not curve.location_supervised:
            return PlanOption(curve.option, curve.level, None, 0.0, curve.expected(1), curve.expected_std(1),
                              curve.expected_overall(1), True)
        n_max = self.affordable(curve.level, budget)
        smallest = curve.budgets[0]
        if n_max < smallest:
            note = (f"below the measured range: {smallest} labels cost ${self.cost(curve.level, smallest):,.2f}; "
                    f"the budget buys {n_max}")
            return PlanOption(curve.option, curve.level, None, nan, nan, nan, nan, False, note)
        candidates = sorted({b for b in curve.budgets if b <= n_max} | {min(n_max, curve.budgets[-1])})
        # highest expected robust AUROC, then the cheaper plan
        best_n = min(candidates, key=lambda n: (-curve.expected(n), self.cost(curve.level, n)))
        return PlanOption(curve.option, curve.level, int(best_n), self.cost(curve.level, best_n),
                          curve.expected(best_n), curve.expected_std(best_n), curve.expected_overall(best_n), True)

    def plan(self, budget: float) -> BudgetPlan:
        """The best option within ``budget`` dollars and every option at its best affordable number of labels.

        Raises:
            ValueError: naming ``budget`` when it is negative or not finite.
        """
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) or budget < 0:
            raise ValueError(f"budget must be a finite number of dollars >= 0, got {budget!r}")
        options = [self._option(curve, float(budget)) for curve in self.curves]
        options.sort(key=lambda o: (not o.feasible, -o.robust_auroc if o.feasible else 0.0,
                                    o.cost if o.feasible else 0.0))
        feasible = [o for o in options if o.feasible and not math.isnan(o.robust_auroc)]
        return BudgetPlan(float(budget), feasible[0] if feasible else None, tuple(options))


def curves_from_records(records: Iterable[dict[str, Any]], score: str = "mean", training_size: int | None = None
                        ) -> list[LabelCurve]:
    """Build one :class:`LabelCurve` per (level, model) from study records (``level``, ``model``, ``score``,
    ``location_labels``, ``robust_auroc``, optionally ``overall_auroc``), averaging over seeds.

    A location-supervised record without a budget (``location_labels`` ``None``: every training sample labelled)
    counts as ``training_size`` labels when given, and is left out otherwise. Records of other scores are ignored, and
    so are mixed-supervision runs with a mix of levels (``location_mix``: one point, not a curve of one level's
    labels; :mod:`spatialspec.cost.frontier` prices each level of the mix).

    Raises:
        ValueError: naming ``records`` when none is left for ``score``, or the record that lacks a field.
    """
    groups: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    seen = False
    for i, record in enumerate(records):
        missing = [k for k in ("level", "score", "robust_auroc") if k not in record]
        if missing:
            raise ValueError(f"records[{i}] lacks {missing}")
        if record["score"] != score:
            continue
        seen = True
        if record.get("location_mix"):
            continue  # a mix of levels is one point priced per level (spatialspec.cost.frontier), not a curve in n
        level = parse_level(record["level"]).name
        model = record.get("model") or "pixel"
        budget = record.get("location_labels")
        if parse_level(level).kind == "binary":
            budget = 1
        elif budget is None:
            if training_size is None:
                continue
            budget = int(training_size)
        groups.setdefault((level, model), {}).setdefault(int(budget), []).append(record)
    if not seen:
        raise ValueError(f"records: none was evaluated with score {score!r}")
    curves = []
    for (level, model), by_budget in groups.items():
        budgets = sorted(by_budget)
        robust = [nan_mean_std([r["robust_auroc"] for r in by_budget[b]]) for b in budgets]
        overall = [nan_mean_std([r.get("overall_auroc", math.nan) for r in by_budget[b]])[0] for b in budgets]
        curves.append(LabelCurve(option_name(level, model), level, tuple(budgets), tuple(m for m, _ in robust),
                                 tuple(s for _, s in robust), tuple(overall),
                                 tuple(len(by_budget[b]) for b in budgets)))
    return curves


def load_results(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Study records from ``results.json`` files, or folders holding one (a study's ``--out`` folder).

    Raises:
        FileNotFoundError: naming the path when neither it nor ``<path>/results.json`` exists.
        InputError: (a ``ValueError``) naming the file when it is not a JSON list of records.
    """
    from spatialspec.errors import InputError

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    records: list[dict[str, Any]] = []
    for path in map(Path, paths):
        file = path / "results.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"results file not found: {file}")
        try:
            content = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"results file {file} is not valid JSON: {e}") from None
        if not isinstance(content, list) or not all(isinstance(r, dict) for r in content):
            raise InputError(f"results file {file} must hold a JSON list of records")
        records.extend(content)
    return records


def records_from_mlflow(tracking_uri: str, experiment_name: str, score: str = "mean") -> list[dict[str, Any]]:
    """Study records from the MLflow runs of a study: each training run logged by ``spatialspec study`` carries its
    bundle's parameters (``bundle``, ``level``, ``seed``, ``location_labels``, ``method``) and its test figures
    (``test_robust_auroc_<score>``, ``test_overall_auroc_<score>``). Runs without those are skipped.

    Raises:
        ValueError: naming the experiment when it does not exist.
    """
    from mlflow.tracking import MlflowClient

    from spatialspec.registry import METHODS

    # which model a bundle's run trained, for bundles that train one model (runs of a method that shares its bundle,
    # like Seg-SPL, carry a `method` parameter)
    models_of: dict[str, set[str]] = {}
    for entry in METHODS.values():
        models_of.setdefault(entry.bundle, set()).add(entry.model)
    bundle_models = {bundle: models.pop() for bundle, models in models_of.items() if len(models) == 1}

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"MLflow experiment {experiment_name!r} not found at {tracking_uri}")
    suffix = score.replace(":", "")
    records = []
    for run in client.search_runs([experiment.experiment_id], max_results=50_000):
        params, metrics = run.data.params, run.data.metrics
        robust = metrics.get(f"test_robust_auroc_{suffix}")
        if robust is None or "level" not in params:
            continue
        model = params.get("method") or bundle_models.get(params.get("bundle", ""), "pixel")
        budget = params.get("location_labels", "none")
        records.append({"level": params["level"], "model": model, "score": score,
                        "seed": int(params["seed"]) if "seed" in params else None,
                        "location_labels": None if budget in ("none", "None", "") else int(float(budget)),
                        "robust_auroc": float(robust),
                        "overall_auroc": float(metrics.get(f"test_overall_auroc_{suffix}", math.nan)),
                        "run_id": run.info.run_id})
    return records
