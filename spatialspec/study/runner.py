"""The spatial-specificity study: every level x seed trained and evaluated through the bundles, in one process
(Saab et al. 2022, Sec. 3.3.2 on the synthetic data, Sec. 5.1 / Table 1 on real data)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from spatialspec._deprecated import moved_names
from spatialspec.data.synthetic import SyntheticParams
from spatialspec.levels import parse_level
from spatialspec.registry import method_for_run
from spatialspec.score_names import parse_score
from spatialspec.selection_rules import STUDY_RULES
from spatialspec.tracking.buffer import BUFFER_NAME

from .bundles import (
    BASELINES,
    BINARY_MODELS,
    METHODS,
    STAGE_EPOCHS,
    bundle_for,
    find_bundles_dir,
    method_level,
    method_mix,
    run_configs,
    run_meta_file,
    study_level,
    study_method,
)
from .evaluation import evaluate_scores
from .predictions import predictions_filename, uncertainty_fields, write_predictions
from .workflow import build_workflow, tracking_settings

if TYPE_CHECKING:
    pass

__all__ = ["StudyConfig", "RunSpec", "study_runs", "run_dir", "run_training", "study_params", "train_overrides",
           "fitted_values"]

__getattr__ = moved_names(__name__, {"plan_runs": "spatialspec.study.runner.study_runs"})


@dataclass
class StudyConfig:
    """What a study trains and where it writes.

    Args:
        levels: level names (``binary``, ``patch:K``, ``dilate:R``, ``bbox``, ``bbox:all``, ``seg``), trained by
            the pixel-wise model (and the ``binary`` level by ``binary_models``). A method name here is moved to
            ``methods`` with a ``FutureWarning`` (the former way to ask for them).
        methods: methods of :data:`spatialspec.registry.METHODS` beyond the levels: the binary-label baselines
            ``jtt`` and ``george`` (trained on image labels by their own bundles) and the cost-robustness methods
            ``seg-ssl`` and ``seg-spl`` (Sec. 4.2).
        seeds: one run per level and seed.
        scores: image-score readouts evaluated on every trained model; the first is the headline score.
        binary_models: ``pixel`` (the pixel-wise network at the binary level) and/or ``classifier`` (the
            global-pooling classifier), used for the ``binary`` level.
        epochs: training epochs per run (the paper's 50 on the synthetic data).
        synthetic: data-model parameters (ignored with a ``datalist``).
        datalist: a decathlon-style datalist to use instead of the synthetic data.
        out_dir: where results, checkpoints and the default MLflow store go.
        tracking_uri: MLflow tracking URI; ``None`` gives ``sqlite:///<out_dir>/mlruns.db``, ``"none"`` disables.
        experiment_name: MLflow experiment.
        bundles_dir: folder of the bundles (found automatically in a source checkout).
        overrides: extra bundle config overrides applied to every run (e.g. ``{"learning_rate": 3e-4}``).
        location_labels: label budgets (Sec. 5.2, Fig. 4): every location-supervised level and method is trained
            once per budget on that many location-labelled training samples (``None``: all of them); the binary
            level and the binary-label baselines train once, on all samples.
        select: the model-selection rule of every run (:mod:`spatialspec.handlers.selection`): ``val_loss`` (the
            smallest validation loss, Sec. 3.3.2; reads no spurious label), ``val_robust_auroc``,
            ``val_worst_group_auroc`` (the largest validation robust / worst-pair AUROC; read ``s``) or ``last``
            (the final epoch), for the specificity levels and the baselines (App. A.2) alike.
        until_converged: train every run until its validation loss has not improved for ``patience`` epochs
            (early stopping), at most ``max_epochs``; the first stage of a two-stage bundle (JTT's and GEORGE's
            ERM model, Seg-SSL's initial network) still trains ``epochs``.
        patience: epochs without improvement of the validation loss after which a run counts as converged (the
            records' ``converged``), and after which ``until_converged`` stops it.
        max_epochs: the most epochs a run trains with ``until_converged``.
        bootstrap: resamples of the stratified percentile bootstrap that gives every test figure a 95% interval
            (:func:`spatialspec.metrics.bootstrap_intervals`, seeded with the run's seed); 0 turns it off (the
            records' ``*_ci`` fields are then ``None``).
        fresh: retrain every run from scratch, overwriting run folders made with other settings, instead of
            refusing them; by default a run is resumed or reused only when its fingerprint
            (:mod:`spatialspec.identity`) equals the one recorded with it.
    """

    levels: Sequence[str] = ("binary", "bbox", "seg")
    methods: Sequence[str] = ()
    seeds: Sequence[int] = (0, 1, 2)
    scores: Sequence[str] = ("mean",)
    binary_models: Sequence[str] = ("pixel",)
    epochs: int = 50
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    datalist: str | None = None
    out_dir: str = "runs/study"
    tracking_uri: str | None = None
    experiment_name: str = "spatialspec-study"
    bundles_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    location_labels: Sequence[int | None] = (None,)
    select: str = "val_loss"
    until_converged: bool = False
    patience: int = 20
    max_epochs: int = 500
    bootstrap: int = 1000
    fresh: bool = False

    def __post_init__(self) -> None:
        named = [study_level(level) for level in self.levels]
        moved = [name for name in named if name in BASELINES or name in METHODS]
        if moved:
            warnings.warn(f"levels: {', '.join(moved)} are methods, not levels; pass them as methods (--methods)",
                          FutureWarning, stacklevel=3)
        self.levels = [name for name in named if name not in moved]
        self.methods = list(dict.fromkeys([*moved, *(study_method(name) for name in self.methods)]))
        self.seeds = [int(seed) for seed in self.seeds]
        self.location_labels = [_budget(n) for n in self.location_labels]
        if not self.location_labels or len(set(self.location_labels)) != len(self.location_labels):
            raise ValueError(f"location_labels must name at least one budget, each once, got {self.location_labels}")
        for score in self.scores:
            parse_score(score)
        for model in self.binary_models:
            if model not in BINARY_MODELS:
                raise ValueError(f"binary_models: {model!r} is not one of {', '.join(BINARY_MODELS)}")
        if not (self.levels or self.methods):
            raise ValueError("levels and methods must together name at least one level or method")
        if not self.seeds or not self.scores or not self.binary_models:
            raise ValueError("seeds, scores and binary_models must each name at least one value")
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise ValueError(f"bootstrap must be an integer >= 0 (0 turns the intervals off), got {self.bootstrap!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.select not in STUDY_RULES:
            raise ValueError(f"select: {self.select!r} is not one of {', '.join(STUDY_RULES)}")
        for name in ("patience", "max_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @property
    def tracking_enabled(self) -> bool:
        """Whether runs are logged to MLflow."""
        return self.tracking_uri is None or self.tracking_uri.strip().lower() != "none"

    def resolved_tracking_uri(self) -> str:
        """The MLflow URI runs are logged to (an absolute SQLite URI under ``out_dir`` by default)."""
        if self.tracking_uri is None:
            return _sqlite_uri(Path(self.out_dir).resolve() / "mlruns.db")
        return self.tracking_uri


def _sqlite_uri(path: Path) -> str:
    """The SQLite URI of a database file, as :func:`monai.utils.path_to_sqlite_uri` writes it (absolute POSIX path,
    URI-special characters percent-encoded), without importing MONAI: writing a sweep file
    (``spatialspec sweep create``) needs neither torch nor MONAI."""
    return f"sqlite:///{quote(Path(path).absolute().as_posix(), safe='/:')}"


def _budget(n: Any) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"location_labels: each budget must be an integer >= 1 or None (all samples), got {n!r}")
    return n


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study: a level trained by a bundle with a seed; ``model`` is ``pixel``, ``classifier``,
    a baseline (``jtt``, ``george``, at the ``binary`` level) or a method (``ssl``, ``spl``, at the ``seg`` level);
    ``location_labels`` is the run's label budget (``None``: every training sample carries its label); ``tuned`` the
    bundle settings a study tunes on validation (``spatialspec study --tune``, :mod:`spatialspec.study.tuning`) with
    this run's values, as ``(key, value)`` pairs."""

    level: str
    model: str
    seed: int
    bundle: str
    location_labels: int | None = None
    tuned: tuple[tuple[str, Any], ...] = ()
    #: a mix of location labels (``mixed:seg=20,bbox=60``: ``"seg=20,bbox=60"``), whose total is location_labels
    location_mix: str = ""

    @property
    def key(self) -> str:
        """A unique, file-name-safe run key, e.g. ``seg-pixel-s0``, or ``seg-ssl-n40-s0`` with a label budget, or
        ``seg-spl-n20-s0-spl_weight=0.5`` with a tuned setting (each tuned value has its own run folder)."""
        budget = "" if self.location_labels is None else f"-n{self.location_labels}"
        budget += f"-{self.location_mix.replace(':', '').replace(',', '_')}" if self.location_mix else ""
        tuned = "".join(f"-{name}={value}" for name, value in self.tuned)
        return f"{self.level.replace(':', '')}-{self.model}{budget}-s{self.seed}{tuned}"

    def config_files(self, kind: str = "train", bundles_dir: str | Path | None = None) -> list[Path]:
        """The configs this run merges (:func:`spatialspec.registry.config_files`): ``train``, or ``evaluate``."""
        return run_configs(self.level, self.model, kind, bundles_dir)

    def meta_file(self, bundles_dir: str | Path | None = None) -> Path:
        """Its bundle's ``metadata.json``."""
        return run_meta_file(self.level, self.model, bundles_dir)


def study_runs(config: StudyConfig) -> list[RunSpec]:
    """Every (level or method, model, budget, seed) run of ``config``: the levels first (non-binary levels with the
    pixel-wise model, ``binary`` with each of ``binary_models``), then the methods: a baseline (``jtt``, ``george``)
    is a ``binary`` run with the baseline as its model, a location method (``seg-ssl``, ``seg-spl``, ``rrr``, ...) a
    run at its default level (``seg``), or at the level its entry names (``rrr:bbox``), with the method as its model.
    Location-supervised levels and methods get one run per label budget of ``config.location_labels``; binary runs are
    trained once, on all samples."""
    runs = []
    for name in config.methods:
        if name in BASELINES:
            runs.extend(RunSpec("binary", name, seed, bundle_for("binary", name)) for seed in config.seeds)
            continue
        method, base = method_level(name)
        model, mix = METHODS[method][1], method_mix(name)
        runs.extend(RunSpec(base, model, seed, bundle_for(base, model), n,
                            location_mix=name.partition(":")[2] if mix else "")
                    for n in ([sum(mix.values())] if mix else config.location_labels) for seed in config.seeds)
    method_runs, runs = runs, []
    for level in config.levels:
        if parse_level(level).kind == "binary":
            for model in config.binary_models:
                runs.extend(RunSpec(level, model, seed, bundle_for(level, model)) for seed in config.seeds)
            continue
        runs.extend(RunSpec(level, "pixel", seed, bundle_for(level, "pixel"), n)
                    for n in config.location_labels for seed in config.seeds)
    return runs + method_runs


def run_dir(config: StudyConfig, spec: RunSpec) -> Path:
    """Where :func:`run_training` writes a run: ``<out_dir>/runs/<key>``, its best checkpoint under
    ``models/model.pt``."""
    return Path(config.out_dir).resolve() / "runs" / spec.key


def train_overrides(config: StudyConfig, spec: RunSpec) -> dict[str, Any]:
    """The bundle overrides that train ``spec``: bundle root, output folder (:func:`run_dir`), level, seed, epochs
    (``max_epochs`` with ``until_converged``, the first stage of a two-stage bundle pinned to ``epochs``), data
    (``datalist`` when set, else the synthetic parameters), the selection rule (``select``), the convergence
    settings (``until_converged``, ``patience``), label budget, the study's extra overrides and the run's tuned
    values (``spec.tuned``)."""
    overrides = {
        "bundle_root": str(find_bundles_dir(config.bundles_dir) / spec.bundle),
        # an expression, so that MONAI's tracking patch can append the executed-config file name to it
        "output_dir": "$" + repr(str(run_dir(config, spec))),
        "level": spec.level,
        "seed": spec.seed,
        "epochs": config.max_epochs if config.until_converged else config.epochs,
        "synthetic": config.synthetic.to_dict(),
        "datalist": config.datalist,
        "select": config.select,
        "until_converged": config.until_converged,
        "patience": config.patience,
    }
    if config.until_converged and spec.bundle in STAGE_EPOCHS:
        overrides[STAGE_EPOCHS[spec.bundle]] = config.epochs
    if config.fresh:
        overrides["resume"] = False
    overrides.update(config.overrides)
    if spec.location_labels is not None:
        overrides["location_labels"] = spec.location_labels
    if spec.location_mix:
        overrides["location_mix"] = method_mix(f"mixed:{spec.location_mix}")
    overrides.update(spec.tuned)
    return overrides


def fitted_values(metrics: dict[str, Any], names: Sequence[str]) -> dict[str, float]:
    """The values a method fitted beyond the weights (:attr:`spatialspec.registry.MethodEntry.fitted`, e.g. DFR's
    chosen ``dfr_C``), read from the trainer's ``engine.state.metrics``.

    Raises:
        RuntimeError: naming the value when the trainer did not record it (its writer handler did not run).
    """
    missing = [name for name in names if name not in metrics]
    if missing:
        raise RuntimeError(f"the trainer recorded no {', '.join(missing)} (engine.state.metrics holds "
                           f"{', '.join(sorted(metrics)) or 'nothing'})")
    return {name: float(metrics[name]) for name in names}


def run_training(config: StudyConfig, spec: RunSpec) -> list[dict[str, Any]]:
    """Train one run through its bundle's ``train.yaml`` and evaluate its best checkpoint on the test split for every
    score through ``evaluate.yaml``, in one test pass (:func:`spatialspec.study.evaluation.evaluate_scores`).

    Returns:
        one record per score: level, model, score, seed, ``location_labels``, every figure of
        :func:`spatialspec.metrics.subgroup_aurocs` on the test split, ``n_test``, ``wall_s`` (training, in the first
        score's record, plus the test pass that read the score out and the score's predictions and intervals),
        ``best_epoch``, ``select`` (the model-selection rule), ``key_metric`` (the validation figure
        the rule read: ``val_loss`` by default; ``last`` keeps the final epoch and reports its ``val_loss``), its
        ``best_key_metric``, ``converged`` (whether the validation loss had stopped improving ``patience`` epochs
        before training ended; :class:`spatialspec.handlers.ConvergenceMonitor`), ``val_loss_best_epoch`` and
        ``epochs_trained``, the MLflow ``run_id`` (or ``None``), the
        uncertainty fields of :func:`spatialspec.study.predictions.uncertainty_fields` (``subgroup_counts``,
        ``bootstrap``, ``robust_auroc_ci``, ``overall_auroc_ci``, ``worst_pair_auroc_ci`` and the pair AUROCs'
        ``*_ci``) and ``predictions``: the per-image test predictions file, relative to ``out_dir``.
    """
    common = train_overrides(config, spec)
    config_files = spec.config_files("train", config.bundles_dir)
    meta_file = spec.meta_file(config.bundles_dir)
    tracking = None
    if config.tracking_enabled:
        tracking = tracking_settings(Path(config.out_dir).resolve() / BUFFER_NAME)
        common.update(tracking_uri=config.resolved_tracking_uri(), experiment_name=config.experiment_name,
                      run_name=spec.key)
    started = time.perf_counter()
    train = build_workflow(config_files, meta_file, tracking,
                      score=config.scores[0], **common)
    train.initialize()
    fingerprint = train.parser.get_parsed_content("fingerprint")["digest"]
    train.run()
    evaluator = train.parser.get_parsed_content("validate#evaluator")
    best_epoch, best_key_metric = evaluator.state.best_metric_epoch, evaluator.state.best_metric
    key_metric = evaluator.state.key_metric_name
    convergence = train.parser.get_parsed_content("train#convergence").summary()
    fitted = fitted_values(train.parser.get_parsed_content("train#trainer").state.metrics,
                           method_for_run(spec.level, spec.model).fitted)
    train.finalize()
    train_wall = time.perf_counter() - started

    records = []
    eval_overrides = {k: v for k, v in common.items() if k not in ("tracking_uri", "experiment_name", "run_name")}
    evaluations = evaluate_scores(
        lambda score: build_workflow(spec.config_files("evaluate", config.bundles_dir), meta_file, None, score=score,
                                **eval_overrides), config.scores)
    for score in config.scores:
        started = time.perf_counter()
        evaluation = evaluations[score]
        test_score, test_y, test_s = evaluation.y_pred, evaluation.y, evaluation.s
        predictions = write_predictions(run_dir(config, spec) / predictions_filename(score), evaluation.ids, test_y,
                                        test_s, test_score)
        record = {"level": spec.level, "model": spec.model, "score": score, "seed": spec.seed, "bundle": spec.bundle,
                  **evaluation.figures, "n_test": int(test_score.size),
                  "wall_s": round(train_wall + evaluation.seconds + time.perf_counter() - started, 3),
                  "best_epoch": int(best_epoch),
                  "key_metric": key_metric, "best_key_metric": float(best_key_metric), "epochs": config.epochs,
                  "select": config.select, "converged": convergence["converged"],
                  "val_loss_best_epoch": convergence["val_loss_best_epoch"],
                  "epochs_trained": convergence["epochs_trained"],
                  "run_key": spec.key, "fingerprint": fingerprint, "run_id": None,
                  "location_labels": spec.location_labels, **({"tuned": dict(spec.tuned)} if spec.tuned else {}),
                  **({"location_mix": method_mix(f"mixed:{spec.location_mix}")} if spec.location_mix else {}),
                  **fitted,
                  **uncertainty_fields(test_score, test_y, test_s, config.bootstrap, spec.seed),
                  "predictions": predictions.relative_to(Path(config.out_dir).resolve()).as_posix()}
        records.append(record)
        train_wall = 0.0  # training time is counted once, in the first score's record
    if tracking is not None:
        from .tracking import log_test_figures  # MLflow only when the run is tracked

        run_id = log_test_figures(config, spec.key, records)
        for record in records:
            record["run_id"] = run_id
    return records


def study_params(config: StudyConfig) -> dict[str, Any]:
    """The study's configuration as flat, JSON-friendly parameters (for MLflow and ``study.json``)."""
    params = asdict(config)
    params["synthetic"] = config.synthetic.to_dict()
    params["tracking_uri"] = config.resolved_tracking_uri() if config.tracking_enabled else "none"
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
