"""``spatialspec bundle export``: one level or method of :data:`spatialspec.registry.METHODS` as a self-contained MONAI
bundle in the model-zoo layout (Saab et al. 2022: the levels of Sec. 3.1 / 5.1, the baselines of Table 1, the
methods of Sec. 4.2).

The source tree keeps one base per model family and small overlays (:func:`spatialspec.registry.config_files`);
an export materialises one chain with ``bundle_root: "."``:

- ``configs/train.yaml``: the merged train chain (``%file#id`` macros resolved, key order kept);
- ``configs/evaluate.yaml`` and ``configs/multi_gpu_train.yaml``: overlays merged after ``train.yaml``, as in the
  model zoo (``--config_file "['configs/train.yaml','configs/evaluate.yaml']"``);
- ``configs/inference.yaml``: self-contained (MONAI Label reads it alone): the inference chain merged, keeping only
  what the inference workflow reaches;
- ``configs/metadata.json`` (:func:`spatialspec.zoo.metadata.export_metadata`) with ``eval_metrics`` measured for
  the export: the test figures of the shipped checkpoint (:func:`spatialspec.zoo.measure.measure_test_figures`) or
  of a study record; empty, and said so, otherwise;
- ``configs/logging.conf``, ``docs/README.md``, ``LICENSE``; ``models/model.pt`` (the checkpoint's network state
  dict, loaded weights-only and strictly into the exported network first) and ``large_files.yml`` when the
  checkpoint is too large to ship in a repository (above :data:`LARGE_FILE_BYTES`, or any paper-scale checkpoint).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spatialspec.atomic import replace_folder, write_json_atomic
from spatialspec.errors import InputError
from spatialspec.registry import COMMON, DATASETS, MethodEntry, config_files, find_bundles_dir, meta_file, method

from .configs import dump_yaml, merge_chain, merge_overlays, reachable, resolve_file_macros

__all__ = ["export_bundle", "LARGE_FILE_BYTES", "SHIPPED_CHECKPOINT", "INFERENCE_ROOTS", "bundle_commands"]

#: a checkpoint above this size is listed in ``large_files.yml`` (GitHub warns about files above 50 MB)
LARGE_FILE_BYTES = 50 * 2**20
#: where an exported bundle's evaluate and inference configs read the shipped checkpoint
SHIPPED_CHECKPOINT = "$os.path.join(@bundle_root, 'models', 'model.pt')"
#: the ids an inference workflow starts from (MONAI's ``InferProperties`` ids are added), kept in ``inference.yaml``
INFERENCE_ROOTS = ("imports", "bundle_root", "initialize", "run", "finalize")


def bundle_commands(multi_gpu_processes: str = "N") -> dict[str, str]:
    """The commands of an exported bundle, run from its folder: train, evaluate, inference, multi-GPU training and
    the two checks (MONAI's schema check needs the schema file or network access)."""
    meta = "--meta_file configs/metadata.json --logging_file configs/logging.conf"
    return {
        "train": f"python -m monai.bundle run --config_file configs/train.yaml {meta}",
        "evaluate": "python -m monai.bundle run --config_file \"['configs/train.yaml','configs/evaluate.yaml']\" "
                    + meta,
        "inference": f"python -m monai.bundle run --config_file configs/inference.yaml {meta}",
        "multi_gpu_train": f"torchrun --standalone --nproc_per_node={multi_gpu_processes} -m monai.bundle run "
                           f"--config_file \"['configs/train.yaml','configs/multi_gpu_train.yaml']\" {meta}",
        "verify_metadata": "python -m monai.bundle verify_metadata --meta_file configs/metadata.json",
        "verify_net_in_out": "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json "
                             "--config_file configs/inference.yaml",
    }


def _entry(name: str | MethodEntry) -> MethodEntry:
    if isinstance(name, MethodEntry):
        return name
    try:
        return method(name)
    except ValueError as e:
        raise InputError(f"name: {e}") from None


def _suffix(chain: Sequence[Path], base: Sequence[Path], kind: str) -> list[Path]:
    """The files ``chain`` merges after ``base`` (the overlay of ``kind``)."""
    if list(chain[:len(base)]) != list(base):
        raise RuntimeError(f"the {kind} chain {[str(p) for p in chain]} does not start with the train chain")
    return list(chain[len(base):])


def _set(config: dict[str, Any], overrides: Mapping[str, Any], argument: str) -> dict[str, Any]:
    """``config`` with ``overrides`` (ids, ``#`` for nested ones) set as ``--id value`` sets them."""
    from monai.bundle import ConfigParser

    parser = ConfigParser(config=copy.deepcopy(config))
    for key, value in overrides.items():
        try:
            parser[key] = value
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise InputError(f"{argument}: cannot set '{key}': {e}") from None
    return parser.get()


def _shipped(config: dict[str, Any], kind: str) -> dict[str, Any]:
    if "ckpt_path" not in config:
        raise RuntimeError(f"the {kind} config defines no ckpt_path: cannot point it at models/model.pt")
    return {**config, "ckpt_path": SHIPPED_CHECKPOINT}


def export_bundle(name: str | MethodEntry, out: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                  dataset: str | None = None, paper_scale: bool = False,
                  bundles_dir: str | os.PathLike | None = None,
                  results: str | os.PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None, *,
                  force: bool = False, overrides: Mapping[str, Any] | None = None,
                  eval_overrides: Mapping[str, Any] | None = None, run_key: str | None = None,
                  weights_url: str = "", large_file_bytes: int = LARGE_FILE_BYTES, measure: bool = True) -> Path:
    """Write one level or method as a self-contained MONAI bundle (see the module docstring for the layout).

    Args:
        name: a :data:`spatialspec.registry.METHODS` name (``seg``, ``bbox``, ``classifier``, ``jtt``, ...).
        out: the bundle folder to create; it appears complete or not at all.
        checkpoint: a trained checkpoint of this configuration (``<output_dir>/models/model.pt``), shipped as
            ``models/model.pt``; its test figures are measured unless ``results`` gives them.
        dataset: ``siim`` or ``isic`` (``common/configs/<dataset>.yaml``); ``None``: the built-in synthetic data.
        paper_scale: the paper-scale network and hyper-parameters (App. A.1, A.2).
        bundles_dir: the source bundles (:func:`spatialspec.registry.find_bundles_dir`).
        results: a study's ``results.json`` (file, folder, records or one record) holding this configuration's
            test figures, recorded instead of measuring them.
        force: replace an existing ``out``.
        overrides: settings written into the exported configs (``{"image_size": 256}``, ``{"epochs": 20}``).
        eval_overrides: settings of the measuring run only, not exported (e.g. ``{"dataset_dir": "data/siim"}``,
            the data the figures are measured on).
        run_key: the study run of ``results`` when it holds several runs of this configuration.
        weights_url: where ``models/model.pt`` is published, written to ``large_files.yml``.
        large_file_bytes: checkpoints above this size are listed in ``large_files.yml``.
        measure: measure the checkpoint's test figures when ``results`` does not give them; ``False`` leaves
            ``eval_metrics`` empty (the description says so), e.g. for the MONAI Label app.

    Returns:
        ``out``, absolute.

    Raises:
        InputError: naming the argument at fault (``name``, ``out``, ``checkpoint``, ``dataset``, ``results``,
            ``bundles_dir``, ``overrides``).
    """
    entry = _entry(name)
    if dataset is not None and dataset not in DATASETS:
        raise InputError(f"dataset: one of {', '.join(DATASETS)} or none, got {dataset!r}")
    out = Path(out).expanduser().resolve()
    if out.exists() and not force:
        raise InputError(f"out: {out} exists; pass --force to replace it")
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
        raise InputError(f"checkpoint: no such file {Path(checkpoint).expanduser()}")
    if results is not None and isinstance(results, (str, os.PathLike)) and not Path(results).exists():
        raise InputError(f"results: no such file or folder {results}")
    if bundles_dir is not None and not (Path(bundles_dir).expanduser() / COMMON / "configs" / "train.yaml").is_file():
        raise InputError(f"bundles_dir: no spatialspec bundles in {bundles_dir} (no {COMMON}/configs/train.yaml)")
    try:
        root = find_bundles_dir(bundles_dir)
    except FileNotFoundError as e:
        raise InputError(f"bundles_dir: {e}") from None
    configs = _export_configs(entry, root, dataset, paper_scale, dict(overrides or {}), checkpoint is not None)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        bundle = staging / "bundle"
        _write_bundle(bundle, entry, root, configs, dataset, paper_scale, checkpoint, results, overrides,
                      eval_overrides, run_key, weights_url, large_file_bytes, measure)
        replace_folder(bundle, out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _export_configs(entry: MethodEntry, root: Path, dataset: str | None, paper_scale: bool,
                    overrides: dict[str, Any], shipped: bool) -> dict[str, Any]:
    """The four configs of the export and the source chain, by name."""
    from monai.bundle.properties import InferProperties

    search = [Path.cwd(), root.parent, root]
    chains = {kind: config_files(entry, kind, dataset, paper_scale, bundles_dir=root) for kind in
              ("train", "evaluate", "inference")}
    chains["multi_gpu_train"] = config_files(entry, "train", dataset, paper_scale, multi_gpu=True, bundles_dir=root)
    local = {"bundle_root": ".", **overrides}
    train = _set(resolve_file_macros(merge_chain(chains["train"]), search), local, "overrides")
    evaluate = resolve_file_macros(merge_overlays(_suffix(chains["evaluate"], chains["train"], "evaluate")), search)
    multi_gpu = resolve_file_macros(merge_overlays(_suffix(chains["multi_gpu_train"], chains["train"], "DDP")),
                                    search)
    inference_files = _suffix(chains["inference"], chains["train"], "inference")
    inference = _set(resolve_file_macros(merge_chain(chains["inference"]), search), local, "overrides")
    if shipped:
        evaluate, inference = _shipped(evaluate, "evaluate"), _shipped(inference, "inference")
    roots = [*INFERENCE_ROOTS, *(p["id"] for p in InferProperties.values()), *merge_overlays(inference_files)]
    inference = reachable(inference, roots)
    return {"train": train, "evaluate": evaluate, "inference": inference, "multi_gpu_train": multi_gpu,
            "chain": [os.path.relpath(p, root) for p in chains["train"]]}


def _write_bundle(bundle: Path, entry: MethodEntry, root: Path, configs: dict[str, Any], dataset: str | None,
                  paper_scale: bool, checkpoint: str | os.PathLike | None, results: Any,
                  overrides: Mapping[str, Any] | None, eval_overrides: Mapping[str, Any] | None,
                  run_key: str | None, weights_url: str, large_file_bytes: int, measure: bool) -> None:
    import json

    from .metadata import export_metadata, figures_from_results

    commands = bundle_commands()
    what = _configuration(entry, dataset, paper_scale)
    origin = f"Exported by `spatialspec bundle export` (spatialspec {_version()}), merging:\n" + "\n".join(
        f"  {name}" for name in configs["chain"])
    (bundle / "configs").mkdir(parents=True)
    dump_yaml(configs["train"], bundle / "configs" / "train.yaml",
              f"{what}: training.\n{origin}\nRun from this folder:\n  {commands['train']}")
    dump_yaml(configs["evaluate"], bundle / "configs" / "evaluate.yaml",
              f"{what}: evaluation of a checkpoint on the test split, merged after train.yaml:\n  "
              f"{commands['evaluate']}")
    dump_yaml(configs["multi_gpu_train"], bundle / "configs" / "multi_gpu_train.yaml",
              f"{what}: data-parallel training, merged after train.yaml:\n  {commands['multi_gpu_train']}")
    dump_yaml(configs["inference"], bundle / "configs" / "inference.yaml",
              f"{what}: inference, self-contained (MONAI Label serves it alone):\n  {commands['inference']}")
    logging_conf = root / "common" / "configs" / "logging.conf"
    shutil.copy2(logging_conf if logging_conf.is_file() else root / entry.bundle / "configs" / "logging.conf",
                 bundle / "configs" / "logging.conf")
    source_meta = json.loads(meta_file(entry, root).read_text())
    write_json_atomic(bundle / "configs" / "metadata.json", source_meta)

    large = []
    if checkpoint is not None:
        shipped = _ship_checkpoint(bundle, Path(checkpoint).expanduser(), entry)
        if paper_scale or shipped.stat().st_size > large_file_bytes:
            large.append({"path": "models/model.pt", "url": weights_url, "hash_val": _sha256(shipped),
                          "hash_type": "sha256"})
    score = str(configs["train"].get("score", "mean"))
    if results is not None:
        figures, provenance = figures_from_results(results, entry, score, run_key, checkpoint)
    elif checkpoint is not None and measure:
        from .measure import measure_test_figures

        figures, count = measure_test_figures(bundle, eval_overrides)
        provenance = (f"eval_metrics: measured at export on the test split ({count} images) of "
                      f"{_data(dataset, configs['train'], eval_overrides)} with models/model.pt.")
    else:
        why = "measuring was turned off" if checkpoint is not None else "exported without a checkpoint or study results"
        figures, provenance = {}, f"eval_metrics: none measured ({why})."
    description = f"Exported as {what}. {provenance}"
    metadata = export_metadata(source_meta, configs["train"], entry, dataset, figures, description)
    metadata.setdefault("required_packages_version", {})["spatialspec"] = _version()
    write_json_atomic(bundle / "configs" / "metadata.json", metadata)
    if large:
        dump_yaml({"large_files": large}, bundle / "large_files.yml",
                  "Files too large to keep in a repository: publish them at `url`, then\n"
                  "  python -m monai.bundle download_large_files --bundle_path .")
    license_file = _write_license(bundle, root)
    _write_readme(bundle, entry, root, what, configs["chain"], overrides, metadata, provenance, large, license_file)


def _configuration(entry: MethodEntry, dataset: str | None, paper_scale: bool) -> str:
    parts = [f"spatialspec {entry.name}"]
    if paper_scale:
        parts.append("paper scale")
    parts.append(f"{dataset.upper()} data" if dataset else "built-in synthetic data by default")
    return ", ".join(parts)


def _data(dataset: str | None, train: Mapping[str, Any], eval_overrides: Mapping[str, Any] | None) -> str:
    settings = {**train, **dict(eval_overrides or {})}
    if dataset is not None:
        return f"{dataset.upper()} (dataset_dir {settings.get('dataset_dir')})"
    if settings.get("datalist"):
        return f"the datalist {settings['datalist']}"
    return f"the built-in synthetic data (overrides {settings.get('synthetic') or {}}, seed {settings.get('seed')})"


def _ship_checkpoint(bundle: Path, checkpoint: Path, entry: MethodEntry) -> Path:
    """Load ``checkpoint`` weights-only and strictly into the exported inference network, and save that network's
    state dict as ``models/model.pt`` (a bare state dict: no optimizer state, no ``module.`` prefix)."""
    import torch

    from spatialspec.embeddings import load_bundle_network

    try:
        network = load_bundle_network(bundle, checkpoint, config_files=("inference.yaml",))
    except (ValueError, FileNotFoundError) as e:
        # the staging folder named in the message is gone once the export fails
        raise InputError(f"checkpoint: {e}".replace(str(bundle), f"the {entry.name} export")) from None
    target = bundle / "models" / "model.pt"
    target.parent.mkdir()
    torch.save(network.state_dict(), target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version() -> str:
    from spatialspec import __version__

    return __version__


def _write_license(bundle: Path, root: Path) -> str:
    """Copy the repository's license text to ``LICENSE``; without one, write the licence the package declares.

    Returns:
        where the text came from.
    """
    for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING"):
        source = root.parent / name
        if source.is_file():
            shutil.copy2(source, bundle / "LICENSE")
            return f"the repository's {name}"
    try:
        declared = importlib.metadata.metadata("spatialspec").get("License") or ""
    except importlib.metadata.PackageNotFoundError:
        declared = ""
    if not declared:
        raise RuntimeError("spatialspec has no LICENSE file and declares no licence: cannot write the bundle's LICENSE")
    (bundle / "LICENSE").write_text(
        f"spatialspec is distributed under the {declared} licence (SPDX identifier, as its package metadata "
        f"declares).\nFull text: https://spdx.org/licenses/{declared}.html\n")
    return f"the licence the package declares ({declared})"


def _demoted(markdown: str) -> str:
    """``markdown`` with every heading one level deeper (code blocks untouched)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and line.startswith("#") else line)
    return "\n".join(lines)


def _write_readme(bundle: Path, entry: MethodEntry, root: Path, what: str, chain: Sequence[str],
                  overrides: Mapping[str, Any] | None, metadata: Mapping[str, Any], provenance: str,
                  large: Sequence[Mapping[str, str]], license_file: str) -> None:
    commands = bundle_commands()
    lines = [f"# {what}", "", entry.summary + ".", "",
             f"A self-contained MONAI bundle exported by `spatialspec bundle export {entry.name}` (spatialspec "
             f"{_version()}): it needs the `spatialspec` package installed (with MONAI) and no source tree.",
             f"Source configs, merged in this order: {', '.join(f'`{c}`' for c in chain)}."]
    if overrides:
        lines.append(f"Settings changed at export: {', '.join(f'`{k}: {v!r}`' for k, v in overrides.items())}.")
    lines += ["", "## Commands (from this folder)", "", "```bash"]
    notes = {"train": "# train: writes eval/models/model.pt (the selected checkpoint) and resumes from eval/resume",
             "evaluate": "# evaluate a checkpoint on the test split: eval/metrics.csv",
             "inference": "# inference: image scores in eval/scores.csv (and masks for the pixel-wise models)",
             "multi_gpu_train": "# data-parallel training on N processes",
             "verify_metadata": "# checks (verify_metadata downloads MONAI's schema unless given --filepath)",
             "verify_net_in_out": None}
    for kind, command in commands.items():
        if notes[kind]:
            lines.append(notes[kind])
        lines.append(command)
    lines += ["```", ""]
    shipped = (bundle / "models" / "model.pt").is_file()
    if shipped:
        lines.append("`evaluate.yaml` and `inference.yaml` read the shipped `models/model.pt`; to use the weights "
                     "`train.yaml` wrote instead, add `--ckpt_path eval/models/model.pt`.")
    else:
        lines.append("No checkpoint ships with this export: `evaluate.yaml` and `inference.yaml` read the one "
                     "`train.yaml` writes (`eval/models/model.pt`).")
    if large:
        lines.append("`large_files.yml` lists `models/model.pt` (too large for a repository; every paper-scale "
                     "checkpoint is listed): publish it"
                     + (f" (its url: {large[0]['url']})" if large[0]["url"] else " and set its `url`")
                     + "; `python -m monai.bundle download_large_files --bundle_path .` then fetches it and checks "
                       "its sha256.")
    lines += ["", "## Figures", "", provenance, ""]
    if metadata["eval_metrics"]:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {k} | {'undefined' if v is None else f'{v:.4f}'} |" for k, v in metadata["eval_metrics"].items()]
        lines.append("")
    lines += [f"LICENSE: {license_file}.", ""]
    source = root / entry.bundle / "docs" / "README.md"
    if source.is_file():
        lines += ["## The source bundle's documentation", "",
                  f"From `bundles/{entry.bundle}/docs/README.md` of the spatialspec repository: its commands run from "
                  "the repository root and its links are relative to that file.", "",
                  _demoted(_demoted(source.read_text()))]
    (bundle / "docs").mkdir()
    (bundle / "docs" / "README.md").write_text("\n".join(lines).rstrip() + "\n")
