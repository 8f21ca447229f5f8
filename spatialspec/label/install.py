"""Lay out the spatialspec MONAI Label app: the packaged ``main.py`` plus one bundle and checkpoint per model.

MONAI Label serves bundles from the app's ``model/<name>`` folders (``configs/inference.yaml``,
``configs/metadata.json`` and ``models/model.pt``). :func:`install_label_app` copies the app and the repository's
bundles there and puts the checkpoint the user names in place, after checking that it loads into the bundle's
network. Nothing is downloaded: the app never consults MONAI Label's model zoo.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_BUNDLES", "install_label_app", "packaged_app_dir"]

#: MONAI Label model name -> the spatialspec bundle that serves it.
DEFAULT_BUNDLES: dict[str, str] = {
    "segmentation": "segmentation",
    "bbox": "bbox_segmentation",
    "binary": "binary_classification",
}

# run outputs that never belong in the app's copy of a bundle
_BUNDLE_IGNORE = shutil.ignore_patterns("eval", "models", "runs", "mlruns", "mlruns.db", "__pycache__", "*.pyc")


def packaged_app_dir() -> Path:
    """The MONAI Label app shipped inside the package (``spatialspec/label/app``)."""
    return Path(__file__).resolve().parent / "app"


def _check_checkpoint(name: str, bundle: Path, checkpoint: Path) -> None:
    """Load ``checkpoint`` weights-only and strictly into the network of ``bundle``'s inference config."""
    from spatialspec.embeddings import load_bundle_network

    if not checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint {name}: no such file {checkpoint}")
    try:
        load_bundle_network(bundle, checkpoint, config_files=("inference.yaml",))
    except ValueError as e:
        raise ValueError(f"--checkpoint {name}: {e}") from None


def install_label_app(out: str | os.PathLike, checkpoints: Mapping[str, str | os.PathLike],
                      bundles: Mapping[str, str | os.PathLike] | None = None,
                      bundles_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write a ready-to-serve MONAI Label app to ``out``.

    Args:
        out: the app folder to create (``monailabel start_server --app out``).
        checkpoints: model name (``segmentation``, ``bbox``, ``binary`` or a name of ``bundles``) -> the trained
            checkpoint (``<bundle>/eval/models/model.pt`` after ``monai.bundle run``), installed as
            ``out/model/<name>/models/model.pt``.
        bundles: model name -> bundle folder, for models other than (or instead of) :data:`DEFAULT_BUNDLES`.
        bundles_dir: where the default bundles live; ``$SPATIALSPEC_BUNDLES`` or the checkout's ``bundles/`` when
            omitted (:func:`spatialspec.study.find_bundles_dir`).
        force: replace an existing ``out`` (its datastore-trained checkpoints are lost).

    Returns:
        ``out`` as an absolute path. The folder appears complete or not at all.

    Raises:
        ValueError / FileNotFoundError: naming the model, file or option at fault.
    """
    out = Path(out).resolve()
    if not checkpoints:
        raise ValueError("--checkpoint: name at least one model (e.g. segmentation=bundles/segmentation/eval/models/"
                         "model.pt)")
    if out.exists() and not force:
        raise ValueError(f"--out: {out} exists; pass --force to replace it")
    sources = {name: Path(path) for name, path in (bundles or {}).items()}
    root = Path(bundles_dir) if bundles_dir is not None else None
    for name in checkpoints:
        if name in sources:
            continue
        if name not in DEFAULT_BUNDLES:
            raise ValueError(f"--checkpoint {name}: unknown model; the app serves {sorted(DEFAULT_BUNDLES)} or a name "
                             "given with --bundle NAME=DIR")
        if root is None:
            from spatialspec.study.bundles import find_bundles_dir

            root = find_bundles_dir()
        sources[name] = root / DEFAULT_BUNDLES[name]
    for name in checkpoints:
        for required in ("inference.yaml", "metadata.json"):
            if not (sources[name] / "configs" / required).is_file():
                raise FileNotFoundError(f"bundle for model {name}: {sources[name]} has no configs/{required}")
        _check_checkpoint(name, sources[name], Path(checkpoints[name]))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        app = staging / "app"
        shutil.copytree(packaged_app_dir(), app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name, checkpoint in checkpoints.items():
            target = app / "model" / name
            shutil.copytree(sources[name], target, ignore=_BUNDLE_IGNORE)
            (target / "models").mkdir()
            shutil.copy2(checkpoint, target / "models" / "model.pt")
        old = staging / "replaced"
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(app, out)
        except OSError:
            if old.exists():
                os.replace(old, out)  # put the previous app back
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
