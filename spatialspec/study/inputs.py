"""The check of a study's input before its first run: the datalist every run will read and the label budgets that
subsample its training split (Sec. 5.2), so that bad input fails before anything is trained or written."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from spatialspec.data import SPLITS, DatalistReport, validate_datalist
from spatialspec.errors import InputError

from .bundles import IMAGE_LABEL_BUNDLES

if TYPE_CHECKING:
    from .runner import RunSpec, StudyConfig

__all__ = ["validate_study_inputs", "check_tracking_uri", "check_overrides", "TRACKING_SCHEMES"]

# the URI schemes of MLflow's tracking stores (a path has none); a database scheme may name its driver, postgresql+...
TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks",
                    "databricks-uc", "uc")


def validate_study_inputs(config: StudyConfig, runs: Sequence[RunSpec]) -> DatalistReport | None:
    """Check what ``runs`` of ``config`` will read, once, before the first of them starts.

    The tracking URI must have a scheme MLflow stores to, every run must be named once and every bundle override
    must name a setting of the bundles (:func:`check_overrides`). With a datalist: every
    split (training and validation for training, test for the evaluation) through
    :func:`spatialspec.data.validate_datalist`, with the abnormal mask ``label`` required when any run trains a
    pixel-wise bundle. With the synthetic data, :class:`~spatialspec.data.SyntheticParams` validated itself. In both
    cases each label budget must fit the training split (Sec. 5.2).

    Returns:
        the datalist's report, ``None`` for the synthetic data.

    Raises:
        InputError: naming a tracking URI MLflow cannot store to, the runs the study lists twice or an override no
            bundle has, listing every problem of the datalist, or naming the label budget that does not fit.
    """
    if config.tracking_enabled:
        check_tracking_uri(config.resolved_tracking_uri())
    keys = [run.key for run in runs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise InputError(f"the study names these runs more than once (a level, model, seed or label budget given "
                         f"twice): {', '.join(twice)}")
    check_overrides(config, runs)
    report = None
    if config.datalist:
        needs_masks = any(run.bundle not in IMAGE_LABEL_BUNDLES for run in runs)
        report = validate_datalist(config.datalist, SPLITS, require_label=needs_masks)
        n_train, source = report.sizes["training"], f"the training split of {config.datalist}"
        counts = report.subgroups["training"]
        n_classes = sum(counts[f"y{y}s0"] + counts[f"y{y}s1"] > 0 for y in (0, 1))
    else:
        n_train, source = config.synthetic.m, "the synthetic training split (m)"
        n_classes = 2 if 0.0 < config.synthetic.mu_y < 1.0 else 1
    budgets = sorted({run.location_labels for run in runs if run.location_labels is not None})
    if budgets and budgets[-1] > n_train:
        raise InputError(f"location_labels: the budget {budgets[-1]} exceeds the {n_train} samples of {source}")
    if budgets and budgets[0] < n_classes:
        raise InputError(f"location_labels: the budget {budgets[0]} is below the {n_classes} classes of {source}: a "
                         "class-stratified subset holds one sample of each")
    return report


def check_tracking_uri(uri: str) -> None:
    """Check that MLflow has a tracking store for ``uri``'s scheme (:data:`TRACKING_SCHEMES`), without connecting
    to it or creating it.

    Raises:
        InputError: naming the URI and the schemes MLflow supports.
    """
    scheme = urlparse(uri).scheme.lower().split("+")[0]
    if scheme not in TRACKING_SCHEMES:
        raise InputError(f"tracking URI {uri!r}: MLflow has no tracking store for the scheme {scheme!r}; use a folder, "
                         "sqlite:///FILE.db, http(s)://SERVER or a database URI (postgresql, mysql, mssql), or 'none'")


def check_overrides(config: StudyConfig, runs: Sequence[RunSpec]) -> None:
    """Check the study's bundle overrides (``--set KEY=VALUE``) against the configs its runs train with: a key
    must be a setting of at least one of the bundles (a bundle without it ignores it, e.g. ``lambda_up`` of JTT), and
    the parent of a nested key (``network_def#channels``) must exist in every bundle (MONAI cannot set it otherwise).
    The configs are read, nothing is built.

    Raises:
        InputError: naming the override and, for a misspelt one, the closest settings.
    """
    if not config.overrides:
        return
    from monai.bundle import ConfigParser

    from .config_cache import merged_config

    parsers = {}
    for run in runs:
        paths = run.config_files("train", config.bundles_dir)
        files = (run.bundle, tuple(paths))
        if files not in parsers:
            parsers[files] = ConfigParser(merged_config(paths))
    for key in config.overrides:
        parent = key.rpartition("#")[0]
        lacking = sorted({bundle for (bundle, _), parser in parsers.items() if parent and parent not in parser})
        if lacking:
            raise InputError(f"--set {key}: the bundle(s) {', '.join(lacking)} have no setting {parent!r}")
        if not any(key in parser for parser in parsers.values()):
            known = sorted({k for parser in parsers.values() for k in _ids(parser, parent)})
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise InputError(f"--set {key}: no bundle of the study has this setting{hint}")


def _ids(parser: object, parent: str) -> list[str]:
    """The ids directly under ``parent`` (the top level for ``""``) of a config parser."""
    node = parser[parent] if parent else parser.get()  # type: ignore[index, attr-defined]
    prefix = f"{parent}#" if parent else ""
    if isinstance(node, dict):
        return [f"{prefix}{k}" for k in node]
    if isinstance(node, list):
        return [f"{prefix}{i}" for i in range(len(node))]
    return []
