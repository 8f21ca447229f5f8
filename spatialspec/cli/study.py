"""``spatialspec study``: train and evaluate every level x seed, then write results, summary and plot."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spatialspec.atomic import removed_on_error, write_json_atomic
from spatialspec.data import parse_synthetic_overrides
from spatialspec.data.validate import require_datalist_file
from spatialspec.report import write_study_report
from spatialspec.selection_rules import STUDY_RULES
from spatialspec.study import (
    StudyConfig,
    format_table,
    plot_results,
    prepare_study,
    run_study,
    study_params,
    study_runs,
    summarize,
    write_summary_csv,
)
from spatialspec.study.bundles import split_methods, study_level
from spatialspec.study.report import convergence_warning
from spatialspec.study.tuning import TUNING_FILE, TuneSettings, parse_tune, run_tuning, tuning_params, tuning_runs
from spatialspec.tracking import BUFFER_NAME

from .types import non_negative_int, positive_int

__all__ = ["register", "add_study_arguments", "config_from_args", "parse_override"]


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``study`` command."""
    parser = sub.add_parser("study", help="train and evaluate levels x seeds (the main job)",
                            description="Train every spatial-specificity level with every seed through the bundles, "
                                        "evaluate robust and subgroup AUROC on the test split, log to MLflow, and "
                                        "write results.json, summary.csv, robust_auroc.png and report.html.")
    parser.add_argument("--out", default="runs/study", help="output folder (default: %(default)s)")
    add_study_arguments(parser, "spatialspec-study", "MLflow tracking URI (default: sqlite:///<out>/mlruns.db; "
                                                     "'none' disables tracking)")
    # the study evaluates on the test split (a sweep only trains): its intervals are options of the study alone
    parser.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="N",
                        help="resamples of the stratified bootstrap that gives every test figure a 95%% interval "
                             "(0: no intervals; default: %(default)s)")
    parser.add_argument("--fresh", action="store_true",
                        help="retrain every run from scratch, overwriting run folders of --out made with other "
                             "settings (by default an existing --out resumes: runs with equal fingerprints are "
                             "reused or resumed, runs with other settings are refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--tune", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="tune a bundle setting on the validation split, repeatable, e.g. --tune "
                             "spl_weight=0.1,0.5,1: every value trains at --tune-seed and --tune-budget per level and "
                             "method whose bundle has KEY, the best validation key metric of --select picks one, and "
                             "the study trains and reports that value only (grid and choice: tuning.json, study.json)")
    parser.add_argument("--tune-seed", type=non_negative_int, default=0, help="seed of the tuning runs "
                                                                              "(default: %(default)s)")
    parser.add_argument("--tune-budget", default="20", metavar="N",
                        help="label budget of the tuning runs, an integer >= 1 or 'all' (default: %(default)s)")
    parser.set_defaults(handler=_study)


def add_study_arguments(parser: argparse.ArgumentParser, experiment_name: str, tracking_help: str) -> None:
    """The options that describe a study (data, levels, seeds, scores, models, epochs, label budgets, overrides,
    tracking, bundles), shared by ``spatialspec study`` and ``spatialspec sweep create`` (see
    :func:`config_from_args`)."""
    parser.add_argument("--dataset", choices=("synthetic", "datalist"), default="synthetic",
                        help="the built-in synthetic data (default) or the file given by --datalist")
    parser.add_argument("--datalist", help="decathlon-style datalist.json (implies --dataset datalist)")
    parser.add_argument("--levels", default="binary,bbox,seg", help="comma-separated levels: binary, patch:K, "
                        "dilate:R, bbox, bbox:all, seg (default: %(default)s); '' for none")
    parser.add_argument("--methods", default="", help="comma-separated methods beyond the levels: the binary-label "
                        "baselines jtt and george, the cost-robustness methods seg-ssl and seg-spl, the mask-guided "
                        "classifiers rrr, gradmask, actdiff and gain (at seg, or METHOD:LEVEL such as rrr:bbox), "
                        "mixed supervision mixed (N masks at --location-labels N, or a mix: mixed:seg=20,bbox=60) "
                        "(`spatialspec bundle list`; default: none)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    parser.add_argument("--score", default="mean", help="comma-separated image scores: mean, max, topk:K; the first "
                                                        "is the headline (default: %(default)s)")
    parser.add_argument("--binary-model", default="pixel", help="comma-separated models for the binary level: pixel "
                                                                "(pixel-wise network), classifier (global pooling)")
    parser.add_argument("--epochs", type=int, default=50,
                        help="training epochs per run, the paper's recipe (default: %(default)s); with "
                             "--until-converged the epochs of a two-stage bundle's first stage")
    parser.add_argument("--select", choices=STUDY_RULES, default="val_loss",
                        help="model-selection rule of every run, specificity levels and baselines alike: val_loss "
                             "(smallest validation loss, Sec. 3.3.2; reads no spurious label), val_robust_auroc / "
                             "val_worst_group_auroc (largest validation robust / worst-pair AUROC; read s), last "
                             "(the final epoch) (default: %(default)s)")
    parser.add_argument("--until-converged", action="store_true",
                        help="train every run until its validation loss has not improved for --patience epochs "
                             "(early stopping), at most --max-epochs")
    parser.add_argument("--patience", type=positive_int, default=20,
                        help="epochs without improvement of the validation loss after which a run counts as "
                             "converged (runs that did not are named in a warning); the early-stopping patience "
                             "of --until-converged (default: %(default)s)")
    parser.add_argument("--max-epochs", type=positive_int, default=500,
                        help="the most epochs a run trains with --until-converged (default: %(default)s)")
    parser.add_argument("--location-labels", default="all", metavar="N1,N2,...",
                        help="label budgets (Sec. 5.2, Fig. 4): train every location-supervised level and method on "
                             "N seeded, class-stratified, nested training samples per budget ('all': every sample); "
                             "binary runs use all samples (default: %(default)s)")
    parser.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE",
                        help="data-model parameter, repeatable, e.g. --synthetic mu_s=-8 --synthetic n=32")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="bundle config override for every run, repeatable, e.g. --set learning_rate=0.0003")
    parser.add_argument("--tracking-uri", help=tracking_help)
    parser.add_argument("--experiment-name", default=experiment_name)
    parser.add_argument("--bundles-dir", help="folder holding the bundles (default: the source tree's bundles/)")


def parse_override(item: str) -> tuple[str, object]:
    """A ``--set KEY=VALUE`` bundle override; the value is read as YAML (numbers, lists, booleans)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {item!r} must look like KEY=VALUE")
    import yaml

    return key.strip(), yaml.safe_load(value)


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The :class:`StudyConfig` an argument namespace describes (validated)."""
    if args.dataset == "datalist" and not args.datalist:
        raise ValueError("--dataset datalist needs --datalist FILE")
    if args.datalist:
        require_datalist_file(args.datalist)
    try:
        seeds = [int(s) for s in _csv(args.seeds)]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    budgets = location_budgets(args.location_labels)
    return StudyConfig(
        levels=[study_level(level) for level in _csv(args.levels)], methods=split_methods(args.methods), seeds=seeds,
        scores=_csv(args.score),
        binary_models=_csv(args.binary_model), epochs=args.epochs, synthetic=parse_synthetic_overrides(args.synthetic),
        datalist=str(Path(args.datalist).resolve()) if args.datalist else None, out_dir=args.out,
        tracking_uri=args.tracking_uri, experiment_name=args.experiment_name, bundles_dir=args.bundles_dir,
        overrides=dict(parse_override(item) for item in args.overrides), location_labels=budgets,
        bootstrap=getattr(args, "bootstrap", 1000), select=args.select, until_converged=args.until_converged,
        patience=args.patience, max_epochs=args.max_epochs, fresh=bool(getattr(args, "fresh", False)))


def _tune_settings(args: argparse.Namespace) -> TuneSettings | None:
    """The study's ``--tune`` settings (``None`` without ``--tune``), validated before anything runs."""
    if not args.tune:
        return None
    budget = location_budgets(args.tune_budget)
    if len(budget) != 1:
        raise ValueError(f"--tune-budget: one budget, got {args.tune_budget!r}")
    return TuneSettings(parse_tune(args.tune), seed=args.tune_seed, budget=budget[0])


def location_budgets(text: str) -> list[int | None]:
    """``--location-labels``: comma-separated integers >= 1 and/or ``all`` (``None``: every training sample).

    Raises:
        ValueError: naming ``--location-labels`` and the bad entry.
    """
    budgets: list[int | None] = []
    for item in _csv(text):
        if item.lower() == "all":
            budgets.append(None)
            continue
        try:
            value = int(item)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"--location-labels: {item!r} is not an integer >= 1 nor 'all'")
        budgets.append(value)
    if not budgets:
        raise ValueError("--location-labels needs at least one budget")
    return budgets


def _study(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from spatialspec.study.tracking import log_study_run  # MONAI's MLflow handler: imported when a study runs

    config = config_from_args(args)
    tune = _tune_settings(args)
    out = Path(config.out_dir).resolve()
    runs = study_runs(config)
    # bad input and run folders of other runs fail here, before anything is written; a failure before the first run
    # finished leaves no --out (with --tune: the tuning runs' folders here, the study's after the choice)
    fingerprints = None if tune else prepare_study(config, runs)
    n_trials = len(tuning_runs(config, tune, runs)) if tune else 0
    finished: list[str] = []
    params, trials = study_params(config), []
    if tune:  # the grid is recorded from the start, the choice once made
        params["tune"] = tuning_params(tune, config, [], {})
    with removed_on_error(out, keep=lambda: bool(finished)):
        write_json_atomic(out / "study.json", params)
        started = time.perf_counter()
        with tqdm(total=n_trials + len(runs), desc="study", unit="run", disable=args.no_progress) as bar:
            def progress(spec, records):
                finished.append(spec.key)
                bar.set_postfix_str(f"{spec.key}: robust AUROC {records[0]['robust_auroc']:.3f}")
                bar.update()

            if tune:
                runs, trials, choice = run_tuning(config, tune, runs, progress=progress)
                params["tune"] = tuning_params(tune, config, trials, choice)
                write_json_atomic(out / "study.json", params)
                bar.write(f"tuned on validation ({config.select}): {choice}")
                fingerprints = prepare_study(config, runs)
            results = run_study(config, progress=progress, fingerprints=fingerprints, runs=runs,
                                reusable=trials)
    wall = time.perf_counter() - started
    rows = summarize(results, out_dir=out)
    summary_path = write_summary_csv(rows, out / "summary.csv")
    plot_path = plot_results(rows, out / "robust_auroc.png",
                             title="synthetic data (Sec. 3.2.2)" if not config.datalist else Path(config.datalist).name)
    report_path = write_study_report(out, results, rows)
    print(format_table(rows))
    warning = convergence_warning(results, config.patience)
    if warning:
        print(warning)
    tuning = f" and {n_trials} tuning runs (tuning.json)" if n_trials else ""
    print(f"\n{len(runs)} runs{tuning} in {wall:.1f} s")
    print(f"results: {out / 'results.json'}\nsummary: {summary_path}\nplot:    {plot_path}\nreport:  {report_path}")
    if config.tracking_enabled:
        buffer = out / BUFFER_NAME
        files = [out / "results.json", summary_path, plot_path, out / "study.json", report_path]
        log_study_run(config.resolved_tracking_uri(), config.experiment_name, params, [*results, *trials],
                      files + ([out / TUNING_FILE] if trials else []), buffer_file=buffer)
        print(f"MLflow:  {config.resolved_tracking_uri()} (experiment '{config.experiment_name}')")
        if buffer.exists():
            print(f"MLflow records buffered (the server was unreachable): {buffer}\n"
                  f"         push them with: spatialspec sync --buffer {buffer}")
    return 0
