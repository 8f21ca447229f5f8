"""Lay out the spatialspec MONAI Label app: the packaged ``main.py`` plus one bundle and checkpoint per model.

MONAI Label serves bundles from the app's ``model/<name>`` folders (``configs/inference.yaml``,
``configs/metadata.json`` and ``models/model.pt``). The repository's bundles are overlays of one base per model
family, so :func:`install_label_app` exports each served level as a self-contained bundle there
(:func:`spatialspec.zoo.export_bundle`: a self-contained ``inference.yaml``, the merged ``train.yaml`` MONAI Label
fine-tunes with; for a SIIM or ISIC model, with that data set's training preprocessing and, for a paper-scale
checkpoint, the paper-scale network), with the checkpoint the user names as ``models/model.pt`` once it loads
weights-only and strictly into the exported network. A folder given with ``bundles`` (e.g. an exported bundle) is
copied as it is. Nothing is downloaded: the app never consults MONAI Label's model zoo.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spatialspec.atomic import replace_folder
from spatialspec.registry import DATASETS, METHODS

__all__ = ["DEFAULT_METHODS", "DEFAULT_BUNDLES", "install_label_app", "packaged_app_dir"]

#: MONAI Label model name -> the level or method (:data:`spatialspec.registry.METHODS`) exported to serve it.
DEFAULT_METHODS: dict[str, str] = {
    "segmentation": "seg",
    "bbox": "bbox",
    "binary": "classifier",
}
#: MONAI Label model name -> the source bundle (its metadata and docs) of the level that serves it.
DEFAULT_BUNDLES: dict[str, str] = {name: METHODS[entry].bundle for name, entry in DEFAULT_METHODS.items()}

# run outputs that never belong in the app's copy of a bundle folder
_BUNDLE_IGNORE = shutil.ignore_patterns("eval", "models", "runs", "mlruns", "mlruns.db", "__pycache__", "*.pyc")


def packaged_app_dir() -> Path:
    """The MONAI Label app shipped inside the package (``spatialspec/label/app``)."""
    return Path(__file__).resolve().parent / "app"


def _check_checkpoint(name: str, bundle: Path, checkpoint: Path) -> None:
    """Load ``checkpoint`` weights-only and strictly into the network of ``bundle``'s inference config."""
    from spatialspec.embeddings import load_bundle_network

    try:
        load_bundle_network(bundle, checkpoint, config_files=("inference.yaml",))
    except ValueError as e:
        raise ValueError(f"--checkpoint {name}: {e}") from None


def _configuration(dataset: str | None, paper_scale: bool) -> str:
    """The exported configuration in words, and how to ask for another one."""
    scale = "paper-scale" if paper_scale else "default-size"
    data = f"{dataset.upper()} data" if dataset else "synthetic data"
    return (f"exported as the {scale} network for {data}; a checkpoint trained with another configuration needs "
            "its --dataset siim|isic, --paper-scale and --set options")


def _export(name: str, target: Path, checkpoint: Path, bundles_dir: Path, dataset: str | None, paper_scale: bool,
            overrides: Mapping[str, Any]) -> None:
    """Export the level serving ``name`` into ``target`` with ``checkpoint`` (no figures measured)."""
    from spatialspec.zoo import export_bundle

    try:
        export_bundle(DEFAULT_METHODS[name], target, checkpoint=checkpoint, dataset=dataset, paper_scale=paper_scale,
                      bundles_dir=bundles_dir, overrides=overrides, measure=False)
    except ValueError as e:
        text = str(e)
        if text.startswith("overrides: "):
            raise ValueError(f"--set: {text[len('overrides: '):]}") from None
        if text.startswith("checkpoint: "):
            text = f"{text[len('checkpoint: '):]} ({_configuration(dataset, paper_scale)})"
        raise ValueError(f"--checkpoint {name}: {text}") from None


def _bundles_root(bundles_dir: str | os.PathLike | None) -> Path:
    from spatialspec.registry import COMMON, find_bundles_dir

    if bundles_dir is not None and not (Path(bundles_dir) / COMMON / "configs" / "train.yaml").is_file():
        raise FileNotFoundError(f"--bundles-dir {bundles_dir}: no spatialspec bundles there (no "
                                f"{COMMON}/configs/train.yaml)")
    return find_bundles_dir(bundles_dir)


def install_label_app(out: str | os.PathLike, checkpoints: Mapping[str, str | os.PathLike],
                      bundles: Mapping[str, str | os.PathLike] | None = None,
                      bundles_dir: str | os.PathLike | None = None, force: bool = False,
                      dataset: str | None = None, paper_scale: bool = False,
                      overrides: Mapping[str, Any] | None = None) -> Path:
    """Write a ready-to-serve MONAI Label app to ``out``.

    Args:
        out: the app folder to create (``monailabel start_server --app out``).
        checkpoints: model name (``segmentation``, ``bbox``, ``binary`` or a name of ``bundles``) -> the trained
            checkpoint (``<output_dir>/models/model.pt`` after ``monai.bundle run``), installed as
            ``out/model/<name>/models/model.pt``.
        bundles: model name -> a self-contained bundle folder (e.g. written by ``spatialspec bundle export``), for
            models other than (or instead of) :data:`DEFAULT_METHODS`; copied without its run outputs.
        bundles_dir: where the source bundles live; ``$SPATIALSPEC_BUNDLES`` or the checkout's ``bundles/`` when
            omitted (:func:`spatialspec.registry.find_bundles_dir`).
        force: replace an existing ``out`` (its datastore-trained checkpoints are lost).
        dataset: ``siim`` or ``isic``: export the default models with that data set's training preprocessing
            (``common/configs/<dataset>.yaml``: reading, resizing to ``image_size``, intensity normalisation);
            ``None``: the synthetic data's.
        paper_scale: export the default models' paper-scale networks (App. A.1, A.2), as trained with
            ``--paper-scale``.
        overrides: settings written into the exported configs, as ``spatialspec bundle export --set`` (e.g.
            ``{"image_size": 256}`` for a model trained at that size).

    Returns:
        ``out`` as an absolute path. The folder appears complete or not at all.

    Raises:
        ValueError / FileNotFoundError: naming the model, file or option at fault.
    """
    out = Path(out).resolve()
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"--dataset: one of {', '.join(DATASETS)}, got {dataset!r}")
    if not checkpoints:
        raise ValueError("--checkpoint: name at least one model (e.g. segmentation=bundles/segmentation/eval/models/"
                         "model.pt)")
    if out.exists() and not force:
        raise ValueError(f"--out: {out} exists; pass --force to replace it")
    folders = {name: Path(path) for name, path in (bundles or {}).items()}
    for name, checkpoint in checkpoints.items():
        if name not in folders and name not in DEFAULT_METHODS:
            raise ValueError(f"--checkpoint {name}: unknown model; the app serves {sorted(DEFAULT_METHODS)} or a name "
                             "given with --bundle NAME=DIR")
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"--checkpoint {name}: no such file {checkpoint}")
    for name, folder in folders.items():
        if name not in checkpoints:
            continue
        for required in ("inference.yaml", "metadata.json"):
            if not (folder / "configs" / required).is_file():
                raise FileNotFoundError(f"bundle for model {name}: {folder} has no configs/{required}")
        _check_checkpoint(name, folder, Path(checkpoints[name]))
    root = _bundles_root(bundles_dir) if any(name not in folders for name in checkpoints) else None

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        app = staging / "app"
        shutil.copytree(packaged_app_dir(), app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name, checkpoint in checkpoints.items():
            target = app / "model" / name
            if name in folders:
                shutil.copytree(folders[name], target, ignore=_BUNDLE_IGNORE)
                (target / "models").mkdir()
                shutil.copy2(checkpoint, target / "models" / "model.pt")
            else:
                _export(name, target, Path(checkpoint), root, dataset, paper_scale, dict(overrides or {}))
        replace_folder(app, out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
