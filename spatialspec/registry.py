"""One table of every supervision level and method spatialspec trains (Saab et al. 2022, Sec. 3.1, 4.2, 5 and
App. A.2), and how each one's MONAI bundle configs combine.

The bundles are layered, like model-zoo's ``train.json`` + ``multi_gpu_train.json``: every run reads

1. ``bundles/common/configs/train.yaml``: data, engines, handlers, model selection, run identity, resume (written
   once for every model);
2. its model family's ``train.yaml``: ``segmentation`` (the pixel-wise network, any level) or
   ``binary_classification`` (the global-pooling classifier);
3. the method's overlays (:attr:`MethodEntry.overlays`), e.g. ``jtt_classification/configs/train.yaml``;

then, as asked, the family's and the method's ``paper_scale.yaml``, a data set (``common/configs/siim.yaml`` or
``isic.yaml``), DDP (``common/configs/multi_gpu_train.yaml``), and ``evaluate.yaml`` or ``inference.yaml``
(``common/configs``). :func:`config_files` returns that list; ``spatialspec bundle configs NAME`` prints it for
``python -m monai.bundle run --config_file``, and ``spatialspec bundle export`` merges it into one self-contained
bundle. Adding a method means one :data:`METHODS` entry plus its overlay.

This module imports neither torch nor MONAI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spatialspec.levels import parse_level

__all__ = ["MethodEntry", "METHODS", "FAMILIES", "COMMON", "DATASETS", "KINDS", "method", "method_for_run",
           "method_names", "find_bundles_dir", "config_files", "bundle_config_files", "meta_file", "command",
           "config_file_arg"]

#: the folder (under ``bundles/``) of the configs every bundle shares
COMMON = "common"
#: model family -> the bundle whose ``train.yaml`` (and ``paper_scale.yaml``) defines the family's network and target
FAMILIES: dict[str, str] = {"pixelwise": "segmentation", "classifier": "binary_classification"}
#: the data-set configs of ``common/configs`` (the built-in synthetic data needs none)
DATASETS = ("siim", "isic")
#: the workflows a bundle runs: train, evaluate (a checkpoint on a split) and inference (scores and masks)
KINDS = ("train", "evaluate", "inference")


@dataclass(frozen=True)
class MethodEntry:
    """One level or method of a study.

    Args:
        name: the name a study (``--levels``), a sweep and the reports use, e.g. ``seg``, ``jtt``, ``seg-ssl``.
        bundle: the bundle folder under ``bundles/`` (its ``metadata.json``, ``docs/README.md``, outputs).
        family: ``pixelwise`` or ``classifier`` (:data:`FAMILIES`).
        model: the run's model name in a study's records (``pixel``, ``classifier``, ``jtt``, ``george``,
            ``ssl``, ``spl``).
        overlays: the method's configs merged after its family's ``train.yaml``, as ``bundle/configs/file``.
        paper_overlays: the method's configs merged after its family's ``paper_scale.yaml`` at paper scale.
        levels: the level kinds it trains (the first is its default level).
        reads_spurious: where it reads the spurious label s: ``never`` (beyond the validation figures, like every
            run) or ``validation`` (its own default model selection reads s on validation).
        cost_label: the annotation its cost is priced from (:mod:`spatialspec.cost`): ``binary`` (image labels),
            ``level`` (the level's location label, e.g. a box or a mask).
        budgets: whether it trains at label budgets (``--location-labels``).
        stage_epochs: the setting holding a two-stage bundle's first-stage epochs, or ``None``.
        metrics: the validation metrics it reports (beyond the selection rule's key metric).
        fits_on_s: whether it fits part of the model on the validation split's spurious labels whatever the
            selection rule (DFR's last layer), so that s must be annotated there.
        fitted: what the method fits beyond the network's weights, as the trainer's ``engine.state.metrics`` names
            (DFR's chosen C): a study copies them into its records and the run's MLflow metrics.
        summary: one line for the tables and ``--help``.
    """

    name: str
    bundle: str
    family: str
    model: str
    overlays: tuple[str, ...] = ()
    paper_overlays: tuple[str, ...] = ()
    levels: tuple[str, ...] = ("seg",)
    reads_spurious: str = "never"
    cost_label: str = "level"
    budgets: bool = True
    stage_epochs: str | None = None
    metrics: tuple[str, ...] = field(default=("val_loss", "val_robust_auroc", "val_overall_auroc",
                                              "val_worst_group_auroc"))
    fits_on_s: bool = False
    fitted: tuple[str, ...] = ()
    summary: str = ""

    @property
    def image_labels_only(self) -> bool:
        """Whether its data need no abnormal mask (the classifier family trained on image labels alone)."""
        return self.family == "classifier" and self.cost_label == "binary"

    @property
    def two_stage(self) -> bool:
        """Whether it trains a first model before the final one (JTT, GEORGE, Seg-SSL)."""
        return self.stage_epochs is not None


# the first stage JTT and GEORGE share (App. A.2: both start from the same ERM model)
_ERM_STAGE = "binary_classification/configs/erm_stage.yaml"
_ERM_STAGE_PAPER = "binary_classification/configs/erm_stage_paper_scale.yaml"

# the mask-guided classifiers (issue 15): one bundle, one overlay per method, any location level (seg the default)
_GUIDED = "mask_guided_classification"
_GUIDED_LEVELS = ("seg", "bbox", "dilate", "patch")

#: every level and method, by study name
METHODS: dict[str, MethodEntry] = {e.name: e for e in (
    MethodEntry("seg", "segmentation", "pixelwise", "pixel", levels=("seg", "patch", "dilate", "binary"),
                summary="pixel-wise supervision at any level (Sec. 3.1, 3.3.2); the pixel-wise binary model"),
    MethodEntry("bbox", "bbox_segmentation", "pixelwise", "pixel", overlays=("bbox_segmentation/configs/train.yaml",),
                levels=("bbox",), summary="one filled box per abnormality, trained pixel-wise (Sec. 5.1)"),
    MethodEntry("classifier", "binary_classification", "classifier", "classifier", levels=("binary",),
                cost_label="binary", budgets=False,
                summary="binary labels, global-pooling classifier (Sec. 5.1, App. A.1)"),
    MethodEntry("jtt", "jtt_classification", "classifier", "jtt",
                overlays=(_ERM_STAGE, "jtt_classification/configs/train.yaml"),
                paper_overlays=(_ERM_STAGE_PAPER, "jtt_classification/configs/paper_scale.yaml"), levels=("binary",),
                reads_spurious="validation", cost_label="binary", budgets=False, stage_epochs="erm_epochs",
                summary="Just Train Twice on binary labels (Table 1, App. A.2)"),
    MethodEntry("george", "george_classification", "classifier", "george",
                overlays=(_ERM_STAGE, "george_classification/configs/train.yaml"),
                paper_overlays=(_ERM_STAGE_PAPER, "george_classification/configs/paper_scale.yaml"), levels=("binary",),
                reads_spurious="validation", cost_label="binary", budgets=False, stage_epochs="erm_epochs",
                summary="GEORGE: inferred groups + group DRO on binary labels (Table 1, App. A.2)"),
    MethodEntry("dfr", "dfr_classification", "classifier", "dfr", overlays=("dfr_classification/configs/train.yaml",),
                levels=("binary",), reads_spurious="validation", cost_label="binary", budgets=False,
                fits_on_s=True, fitted=("dfr_C", "dfr_tuning_score"),
                summary="Deep Feature Reweighting: ERM classifier, last layer refitted on balanced validation "
                        "groups (Kirichenko et al. 2023)"),
    MethodEntry("seg-ssl", "seg_ssl", "pixelwise", "ssl", overlays=("seg_ssl/configs/train.yaml",),
                stage_epochs="initial_epochs",
                summary="semi-supervised segmentation, image-level similarity loss (Sec. 4.2.1)"),
    MethodEntry("seg-spl", "segmentation", "pixelwise", "spl", overlays=("segmentation/configs/spl.yaml",),
                summary="supervised pixel-level similarity loss (Sec. 4.2.2)"),
    MethodEntry("mixed", "segmentation", "pixelwise", "mixed", overlays=("segmentation/configs/mixed.yaml",),
                levels=("seg", "bbox", "dilate", "patch"),
                summary="location labels (a mask / box mix) on a budget, image labels (MIL) on the rest, one run"),
    *(MethodEntry(name, _GUIDED, "classifier", name, overlays=(f"{_GUIDED}/configs/train.yaml",
                                                             f"{_GUIDED}/configs/{name}.yaml"),
                  levels=_GUIDED_LEVELS, summary=summary) for name, summary in (
        ("rrr", "classifier + input-gradient penalty outside the location label (Ross et al. 2017)"),
        ("gradmask", "classifier + logit-difference saliency outside the location label (Simpson et al. 2019)"),
        ("actdiff", "classifier + activation distance to the background-replaced image (Viviano et al. 2021)"),
        ("gain", "classifier + Grad-CAM supervised by the location label (after Li et al. 2018)"))),
)}


def method_names() -> tuple[str, ...]:
    """Every registered name, in table order."""
    return tuple(METHODS)


def method(name: str) -> MethodEntry:
    """The entry of ``name`` (case-insensitive).

    Raises:
        ValueError: naming the known entries when ``name`` is not one.
    """
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}: one of {', '.join(METHODS)}")
    return METHODS[key]


def method_for_run(level: str, model: str) -> MethodEntry:
    """The entry that trains ``level`` with ``model`` (a study's run): ``pixel`` runs go to ``bbox`` for the box
    levels and to ``seg`` otherwise; every other model names its entry.

    Raises:
        ValueError: when the model is unknown or does not train ``level``.
    """
    kind = parse_level(level).kind
    if model == "pixel":
        return METHODS["bbox"] if kind == "bbox" else METHODS["seg"]
    entry = next((e for e in METHODS.values() if e.model == model), None)
    if entry is None:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(sorted({e.model for e in METHODS.values()}))}")
    if kind not in entry.levels:
        if entry.levels == ("binary",):
            raise ValueError(f"{entry.name} trains on image labels only (level 'binary'), not {level!r}")
        raise ValueError(f"{entry.name} trains the level(s) {', '.join(entry.levels)} only, not {level!r}")
    return entry


def find_bundles_dir(bundles_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the bundles: ``bundles_dir``, ``$SPATIALSPEC_BUNDLES``, or ``bundles/`` of the source tree.

    Raises:
        FileNotFoundError: naming the places searched when none holds ``common/configs/train.yaml``.
    """
    candidates = [bundles_dir, os.environ.get("SPATIALSPEC_BUNDLES"), Path(__file__).resolve().parents[1] / "bundles"]
    tried = []
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate).expanduser().resolve()
        tried.append(str(path))
        if (path / COMMON / "configs" / "train.yaml").is_file():
            return path
    raise FileNotFoundError(f"no spatialspec bundles found (looked in {tried}); pass --bundles-dir or set "
                            "SPATIALSPEC_BUNDLES to the repository's bundles/ folder")


def config_files(name: str | MethodEntry, kind: str = "train", dataset: str | None = None, paper_scale: bool = False,
                 multi_gpu: bool = False, bundles_dir: str | os.PathLike | None = None,
                 extra: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """The configs ``python -m monai.bundle run`` merges, in order, for one level or method.

    Args:
        name: a :data:`METHODS` name or entry.
        kind: ``train``, ``evaluate`` (a trained checkpoint on ``eval_split``) or ``inference``.
        dataset: ``siim``, ``isic`` or ``None`` (the built-in synthetic data or a ``--datalist``).
        paper_scale: merge the paper-scale networks and hyper-parameters (App. A.1, A.2).
        multi_gpu: merge the DDP config (``torchrun``), for ``train`` only.
        bundles_dir: where the bundles are (:func:`find_bundles_dir`).
        extra: more configs merged last (paths).

    Raises:
        ValueError: naming the argument at fault.
    """
    entry = name if isinstance(name, MethodEntry) else method(name)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)} or None, got {dataset!r}")
    if multi_gpu and kind != "train":
        raise ValueError("multi_gpu applies to the train workflow only")
    root = find_bundles_dir(bundles_dir)
    family = FAMILIES[entry.family]
    names = [f"{COMMON}/configs/train.yaml", f"{family}/configs/train.yaml"]
    if paper_scale:
        names.append(f"{family}/configs/paper_scale.yaml")
    names.extend(entry.overlays)
    if paper_scale:
        names.extend(entry.paper_overlays)
    if dataset is not None:
        names.append(f"{COMMON}/configs/{dataset}.yaml")
    if multi_gpu:
        names.append(f"{COMMON}/configs/multi_gpu_train.yaml")
    if kind != "train":
        names.append(f"{COMMON}/configs/{kind}.yaml")
    return [root / n for n in names] + [Path(p) for p in extra]


def meta_file(name: str | MethodEntry, bundles_dir: str | os.PathLike | None = None) -> Path:
    """The ``metadata.json`` of the entry's bundle."""
    entry = name if isinstance(name, MethodEntry) else method(name)
    return find_bundles_dir(bundles_dir) / entry.bundle / "configs" / "metadata.json"


def command(name: str | MethodEntry, kind: str = "train", dataset: str | None = None, paper_scale: bool = False,
            multi_gpu: bool = False, bundles_dir: str | os.PathLike | None = None, relative_to: str | None = None
            ) -> str:
    """The ``python -m monai.bundle run`` command line of one level or method (paths relative to ``relative_to``,
    e.g. the repository root, when given)."""
    files = config_files(name, kind, dataset, paper_scale, multi_gpu, bundles_dir)
    meta = meta_file(name, bundles_dir)

    def shown(path: Path) -> str:
        return os.path.relpath(path, relative_to) if relative_to is not None else str(path)

    runner = "torchrun --standalone --nproc_per_node=N" if multi_gpu else "python"
    runner += " -m monai.bundle run"
    return f'{runner} --config_file "{config_file_arg([shown(f) for f in files])}" --meta_file {shown(meta)}'


def config_file_arg(files: Sequence[str | os.PathLike]) -> str:
    """``files`` as ``python -m monai.bundle run --config_file`` takes a list: a Python list literal
    (``['a.yaml','b.yaml']``; MONAI's workflow reads a comma-joined string as one file name)."""
    return "[" + ",".join(repr(str(f)) for f in files) + "]"


def bundle_config_files(bundle_dir: str | os.PathLike, names: Sequence[str | os.PathLike] = ("train.yaml",)
                        ) -> list[Path]:
    """The configs to merge for config file ``names`` of one bundle folder, as a bundle user names them
    (``train.yaml``, ``evaluate.yaml``, ``inference.yaml``, ``paper_scale.yaml``, ``siim.yaml``, ``isic.yaml``,
    ``multi_gpu_train.yaml``, or a file of the folder such as ``spl.yaml``).

    A folder of the source tree's ``bundles/`` is an overlay: its whole chain (:func:`config_files` of the
    :data:`METHODS` entry whose own overlay ``names`` holds, else of its first entry) comes first,
    ``paper_scale.yaml`` and the others go where :func:`config_files` puts them. Any other folder
    (``spatialspec bundle export`` output, a model-zoo bundle) is self-contained: its ``configs/<name>`` files, in
    order. Absolute paths are taken as they are.

    Raises:
        FileNotFoundError: naming a config file that does not exist.
    """
    folder = Path(bundle_dir).expanduser().resolve()
    root = folder.parent
    entries = [e for e in METHODS.values() if e.bundle == folder.name]
    # a bundle of several methods (segmentation: seg, seg-spl; mask_guided_classification): the one whose own
    # overlay is named, else the first
    named = {Path(n).name for n in names} - {"train.yaml"}
    entry = next((e for e in entries if named & {Path(o).name for o in e.overlays if o.startswith(f"{folder.name}/")}),
                 entries[0] if entries else None)
    paths: list[Path] = []
    if entry is not None and (root / COMMON / "configs" / "train.yaml").is_file():
        options: dict = {"kind": "train", "dataset": None, "paper_scale": False, "multi_gpu": False}
        extra = []
        for name in names:
            base = Path(name).name
            if Path(name).is_absolute():
                extra.append(Path(name))
            elif base == "paper_scale.yaml":
                options["paper_scale"] = True
            elif base == "multi_gpu_train.yaml":
                options["multi_gpu"] = True
            elif base in ("evaluate.yaml", "inference.yaml"):
                options["kind"] = base[: -len(".yaml")]
            elif base[: -len(".yaml")] in DATASETS:
                options["dataset"] = base[: -len(".yaml")]
            elif base != "train.yaml":
                extra.append(folder / "configs" / base)
        paths = config_files(entry, bundles_dir=root, **options)
        chain = set(paths)
        paths += [p for p in extra if p not in chain]
    else:
        paths = [Path(n) if Path(n).is_absolute() else folder / "configs" / n for n in names]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"bundle config not found: {path} (bundle {folder})")
    return paths
