"""Bundle settings tuned on the validation split, as the paper tuned Seg-SPL's weight on validation Dice (Saab et al.
2022, App. A.1): ``spatialspec study --tune KEY=V1,V2,...``.

A tuning step trains every value of the grid (the product of the grids of the keys a run's bundle has) at one seed
and one label budget (seed 0 and 20 labels by default; issue 15, Sec. 4), per (level, model) of the study; the value
whose run has the best validation key metric under the study's selection rule (``--select``: the records'
``best_key_metric``, the smallest validation loss by default, never a test figure) is chosen, and the study's runs
then train with the chosen value at every seed and budget. A tuned run's key names its value
(``seg-spl-n20-s0-spl_weight=0.5``), so every value has its own run folder and fingerprint: a rerun reuses finished
runs, a wider grid trains only the new values, and the study's run at the tuning seed and budget is the chosen
tuning run itself. The tuning runs' records go to ``tuning.json`` (``chosen`` marks the chosen ones), the grid and
the choice to ``study.json`` and the MLflow parent run (``tune.*`` parameters); ``results.json``, ``summary.csv``,
the table, the plot and the report hold the study's runs, with the chosen values only.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spatialspec.errors import InputError
from spatialspec.levels import parse_level

if TYPE_CHECKING:
    from .runner import RunSpec, StudyConfig

__all__ = ["TuneSettings", "parse_tune", "tuning_runs", "choose", "tuned_runs", "mark_chosen", "tuning_params",
           "run_tuning", "TUNING_FILE"]

#: the file under a study's ``out_dir`` holding the tuning runs' records
TUNING_FILE = "tuning.json"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUE = re.compile(r"[A-Za-z0-9_.+-]+\Z")


@dataclass
class TuneSettings:
    """What a study tunes (``--tune``, ``--tune-seed``, ``--tune-budget``).

    Args:
        grid: bundle setting -> the values to try (top-level ids of the bundles' configs, e.g. ``spl_weight``).
        seed: the seed of the tuning runs.
        budget: the label budget of the tuning runs of location-supervised levels and methods (``None``: all
            samples); runs at the ``binary`` level train on all samples, as in the study.
    """

    grid: dict[str, list[Any]] = field(default_factory=dict)
    seed: int = 0
    budget: int | None = 20


def parse_tune(items: Sequence[str]) -> dict[str, list[Any]]:
    """The grid of ``--tune KEY=V1,V2,...`` options; each value is read as YAML (``0.5``, ``1e-3``, ``true``).

    Raises:
        InputError: naming the ``--tune`` option that is malformed, names a key twice, or has fewer than two
            distinct values, or a value that is not a plain number, boolean or word.
    """
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise InputError(f"--tune {item!r} must look like KEY=V1,V2,... with KEY a top-level bundle setting "
                             "(letters, digits, _)")
        if key in grid:
            raise InputError(f"--tune {key}: given twice; list every value in one --tune {key}=V1,V2,...")
        parts = [part.strip() for part in text.split(",")]
        if any(not _VALUE.match(part) for part in parts):
            raise InputError(f"--tune {item!r}: each value must be a number, boolean or word, comma-separated")
        values = [_number(yaml.safe_load(part)) for part in parts]
        if len({repr(v) for v in values}) != len(values) or len(values) < 2:
            raise InputError(f"--tune {item!r}: give at least two distinct values (one value is --set {key}=V)")
        grid[key] = values
    return grid


def _number(value: Any) -> Any:
    """A YAML value, with a number YAML 1.1 reads as text (``1e-3``) as the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _settings_of(config: StudyConfig, runs: Sequence[RunSpec], grid: dict[str, list[Any]]) -> dict[str, list[str]]:
    """The tuned keys each run's bundle config has, by run key (the configs are read, nothing is built).

    Raises:
        InputError: naming a key no bundle of the study has (with the closest settings), a key ``--set`` also
            sets, or a key the study sets itself (seed, epochs, label budget, ...).
    """
    import difflib

    from monai.bundle import ConfigParser

    from .config_cache import merged_config
    from .runner import train_overrides

    parsers: dict[tuple, Any] = {}
    found: dict[str, list[str]] = {}
    for run in runs:
        paths = tuple(run.config_files("train", config.bundles_dir))
        if paths not in parsers:
            parsers[paths] = ConfigParser(merged_config(list(paths)))
        found[run.key] = sorted(key for key in grid if key in parsers[paths])  # run keys free of --tune's order
    own = {"location_labels", "tracking_uri", "experiment_name", "run_name"}
    own |= set(train_overrides(config, runs[0])) - set(config.overrides) if runs else set()
    for key in grid:
        if key in config.overrides:
            raise InputError(f"--tune {key}: also given as --set {key}; give it once")
        if key in own:
            raise InputError(f"--tune {key}: the study sets it itself (its own option); it cannot be tuned")
        if not any(key in keys for keys in found.values()):
            known = sorted({k for parser in parsers.values() for k in parser.get()})
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise InputError(f"--tune {key}: no bundle of the study's levels and methods has this setting{hint}")
    return found


def tuning_runs(config: StudyConfig, settings: TuneSettings, runs: Sequence[RunSpec]) -> list[RunSpec]:
    """The tuning runs of a study whose runs are ``runs``: one per (level, model) whose bundle has a tuned key and
    per value of the product of those keys' grids, at ``settings.seed`` and ``settings.budget`` (``None`` at the
    ``binary`` level; a run with a mix of location labels, ``mixed:seg=20,bbox=60``, at its own mix), in the order of
    ``runs`` and of the grid's values (the keys in name order).

    Raises:
        InputError: as :func:`_settings_of`, before anything is built or trained.
    """
    found = _settings_of(config, runs, settings.grid)
    trials: dict[str, RunSpec] = {}
    for run in runs:
        keys = found[run.key]
        if not keys:
            continue
        budget = None if parse_level(run.level).kind == "binary" else settings.budget
        if run.location_mix:  # a mix of masks and boxes (mixed:seg=20,bbox=60) keeps its own budget
            budget = run.location_labels
        for values in itertools.product(*(settings.grid[key] for key in keys)):
            trial = replace(run, seed=settings.seed, location_labels=budget, tuned=tuple(zip(keys, values)))
            trials.setdefault(trial.key, trial)
    return list(trials.values())


def _group(level: str, model: str) -> str:
    """The name of a (level, model) a choice is made for, as run keys begin: ``seg-spl``, ``bbox-rrr``."""
    return f"{level.replace(':', '')}-{model}"


def choose(config: StudyConfig, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The chosen values per (level, model) (:func:`_group` name): the tuning run with the best validation key
    metric (``best_key_metric``) under the study's selection rule, the smallest for a loss (``val_loss``, and the
    final epoch's ``val_loss`` under ``last``), the largest for an AUROC; a NaN counts as worst, a tie goes to the
    earlier value of the grid. Test figures are never read."""
    from spatialspec.handlers.selection import SELECTION_RULES

    larger = SELECTION_RULES[config.select].mode == "max"
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for record in records:
        if record["score"] != config.scores[0]:
            continue
        value = float(record["best_key_metric"])
        value = -math.inf if math.isnan(value) else (value if larger else -value)
        group = _group(record["level"], record["model"])
        if group not in best or value > best[group][0]:
            best[group] = (value, dict(record["tuned"]))
    return {group: tuned for group, (_, tuned) in best.items()}


def tuned_runs(runs: Sequence[RunSpec], choice: dict[str, dict[str, Any]]) -> list[RunSpec]:
    """``runs`` with the chosen values of their (level, model) (untuned runs as they are)."""
    return [replace(run, tuned=tuple(choice[_group(run.level, run.model)].items()))
            if _group(run.level, run.model) in choice else run for run in runs]


def mark_chosen(records: Sequence[dict[str, Any]], choice: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The tuning records with ``chosen`` set: whether the record's values are its (level, model)'s choice."""
    return [{**r, "chosen": choice.get(_group(r["level"], r["model"])) == r["tuned"]} for r in records]


def tuning_params(settings: TuneSettings, config: StudyConfig, records: Sequence[dict[str, Any]],
                  choice: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``tune`` entry of ``study.json`` and the MLflow parent run: the grid, seed, budget, selection rule, the
    choice per (level, model) and each tuning run's validation figure."""
    return {"grid": settings.grid, "seed": settings.seed, "budget": settings.budget, "select": config.select,
            "choice": choice,
            "trials": [{"run_key": r["run_key"], "tuned": r["tuned"], "key_metric": r["key_metric"],
                        "best_key_metric": r["best_key_metric"], "chosen": r.get("chosen", False)}
                       for r in records if r["score"] == config.scores[0]]}


def run_tuning(config: StudyConfig, settings: TuneSettings, runs: Sequence[RunSpec],
               progress: Callable[[RunSpec, list[dict[str, Any]]], None] | None = None
               ) -> tuple[list[RunSpec], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The tuning step of a study whose runs are ``runs``: check the study's input and the grid, train the tuning
    runs (:func:`tuning_runs`; finished ones, here or among the study's records, are reused as by
    :func:`~spatialspec.study.resume.run_study`), choose (:func:`choose`) and write their records, marked
    ``chosen``, to ``<out_dir>/tuning.json``.

    Returns:
        ``runs`` with the chosen values (:func:`tuned_runs`), the tuning records and the choice.

    Raises:
        InputError: before anything trains, for a bad key or bad study input.
        RunIdentityError: before anything trains, when a tuning run's folder holds a run with other settings.
    """
    from spatialspec.atomic import write_json_atomic

    from .inputs import validate_study_inputs
    from .resume import prepare_study, read_results, run_study

    validate_study_inputs(config, runs)
    trials = tuning_runs(config, settings, runs)
    fingerprints = prepare_study(config, trials)
    out = Path(config.out_dir)
    records = run_study(config, progress, fingerprints, runs=trials, results_file=TUNING_FILE,
                        reusable=read_results(out / "results.json"))
    choice = choose(config, records)
    records = mark_chosen(records, choice)
    write_json_atomic(out / TUNING_FILE, records)
    return tuned_runs(runs, choice), records, choice
