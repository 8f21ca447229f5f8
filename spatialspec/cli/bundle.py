"""``spatialspec bundle``: the table of levels and methods (``list``), the config chain of one of them for
``python -m monai.bundle run --config_file`` (``configs``: a list literal, since MONAI reads a comma-joined string
as one file name), and its export as a self-contained model-zoo bundle (``export``).

``list`` and ``configs`` read :mod:`spatialspec.registry` only: they import neither torch nor MONAI.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from spatialspec.registry import (
    DATASETS,
    KINDS,
    METHODS,
    command,
    config_file_arg,
    config_files,
    find_bundles_dir,
    meta_file,
)

__all__ = ["register", "method_table", "parse_settings"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bundle`` command and its ``list``, ``configs`` and ``export`` sub-commands."""
    parser = sub.add_parser("bundle", help="the levels and methods as MONAI bundles: list, config chains, export",
                            description="Every level and method of a study is a chain of MONAI bundle configs "
                                        "(spatialspec.registry): list them, print the chain of one for `python -m "
                                        "monai.bundle run --config_file`, or export one as a self-contained "
                                        "model-zoo bundle.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    listing = kinds.add_parser("list", help="the table of levels and methods")
    listing.set_defaults(handler=_list)

    configs = kinds.add_parser("configs", help="the config chain of one level or method, for --config_file",
                               description="Print the configs `python -m monai.bundle run --config_file` merges, as "
                                           "the list it takes (['a.yaml','b.yaml']), e.g. python -m monai.bundle "
                                           "run --config_file \"$(spatialspec bundle configs jtt)\" --meta_file "
                                           "$(spatialspec bundle configs jtt --meta).")
    _add_chain_arguments(configs)
    configs.add_argument("--kind", dest="workflow", choices=KINDS, default="train",
                         help="train (default), evaluate (a checkpoint on the test split) or inference (a "
                              "datalist split, or the DICOM / PNG / JPEG files of --input_dir)")
    configs.add_argument("--multi-gpu", action="store_true", help="merge the DDP config (torchrun; train only)")
    shown = configs.add_mutually_exclusive_group()
    shown.add_argument("--command", dest="show_command", action="store_true",
                       help="print the whole `monai.bundle run` command line")
    shown.add_argument("--meta", action="store_true", help="print the metadata.json of the method's bundle")
    configs.set_defaults(handler=_configs)

    export = kinds.add_parser("export", help="write one level or method as a self-contained MONAI bundle",
                              description="Materialise one level or method as a model-zoo bundle in --out: merged "
                                          "configs/train.yaml, evaluate.yaml, multi_gpu_train.yaml, a "
                                          "self-contained inference.yaml, metadata.json with the figures measured "
                                          "for it, docs/README.md, LICENSE, models/model.pt and large_files.yml.")
    _add_chain_arguments(export)
    export.add_argument("--out", required=True, help="the bundle folder to create")
    export.add_argument("--checkpoint", help="a trained checkpoint of this configuration, shipped as "
                                             "models/model.pt; its test figures are measured unless --results")
    export.add_argument("--results", help="a study's results.json (or folder) whose record of this configuration "
                                          "gives the figures")
    export.add_argument("--run-key", help="with --results: the run whose record to use, when it holds several")
    export.add_argument("--dataset-dir", help="with --dataset: where the data are, for measuring the figures "
                                              "(not written into the bundle)")
    export.add_argument("--set", dest="settings", action="append", metavar="ID=VALUE",
                        help="a setting written into the exported configs (YAML value), repeatable, e.g. "
                             "--set image_size=256")
    export.add_argument("--weights-url", default="", help="where models/model.pt is published (large_files.yml)")
    export.add_argument("--force", action="store_true", help="replace an existing --out folder")
    export.set_defaults(handler=_export)


def _add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"a level or method: {', '.join(METHODS)}")
    parser.add_argument("--dataset", choices=DATASETS, help="a real data set config (default: the synthetic data)")
    parser.add_argument("--paper-scale", action="store_true", help="the paper-scale network (App. A.1, A.2)")
    parser.add_argument("--bundles-dir", help="the source bundles (default: $SPATIALSPEC_BUNDLES or the checkout's "
                                              "bundles/)")


def method_table() -> list[dict[str, str]]:
    """One row per :data:`~spatialspec.registry.METHODS` entry: name, bundle, family, model, levels, whether it
    reads s, the label its cost is priced from, summary."""
    return [{"name": e.name, "bundle": e.bundle, "family": e.family, "model": e.model, "levels": ",".join(e.levels),
             "reads s": e.reads_spurious, "cost label": e.cost_label, "summary": e.summary}
            for e in METHODS.values()]


def _list(args: argparse.Namespace) -> int:
    rows = method_table()
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns[:-1]}
    print("  ".join(c.ljust(widths[c]) for c in columns[:-1]) + "  " + columns[-1])
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns[:-1]) + "  " + row[columns[-1]])
    return 0


def _shown_from(root: Path) -> str | None:
    """Paths relative to the working directory when the bundles are under it, else absolute."""
    cwd = Path.cwd().resolve()
    return str(cwd) if root == cwd or cwd in root.parents else None


def _configs(args: argparse.Namespace) -> int:
    if args.multi_gpu and args.workflow != "train":
        raise ValueError("--multi-gpu: applies to --kind train only")
    root = find_bundles_dir(args.bundles_dir)
    files = config_files(args.name, args.workflow, args.dataset, args.paper_scale, args.multi_gpu, root)
    relative = _shown_from(root)

    def shown(path: Path) -> str:
        return os.path.relpath(path, relative) if relative is not None else str(path)

    if args.show_command:
        print(command(args.name, args.workflow, args.dataset, args.paper_scale, args.multi_gpu, root, relative))
    elif args.meta:
        print(shown(meta_file(args.name, root)))
    else:
        print(config_file_arg([shown(f) for f in files]))
    return 0


def parse_settings(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``ID=VALUE`` items as config overrides, each value read as YAML (``256``, ``true``, ``[1, 2]``, text).

    Raises:
        ValueError: naming the option and the item that is not ``ID=VALUE``.
    """
    import yaml

    settings: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} {item!r} must look like ID=VALUE")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"{option} {item!r}: the value is not YAML ({str(e).splitlines()[0]})") from None
    return settings


def _export(args: argparse.Namespace) -> int:
    from spatialspec.errors import InputError
    from spatialspec.zoo import export_bundle

    if args.dataset_dir and not args.dataset:
        raise ValueError("--dataset-dir: name the data set with --dataset siim|isic")
    if args.run_key and not args.results:
        raise ValueError("--run-key: give the study's --results too")
    try:
        out = export_bundle(args.name, args.out, checkpoint=args.checkpoint, dataset=args.dataset,
                            paper_scale=args.paper_scale, bundles_dir=args.bundles_dir, results=args.results,
                            force=args.force, overrides=parse_settings(args.settings),
                            eval_overrides={"dataset_dir": args.dataset_dir} if args.dataset_dir else None,
                            run_key=args.run_key, weights_url=args.weights_url)
    except InputError as e:
        # the library names its arguments; the command line spells them as options
        text = str(e)
        for argument in ("name", "out", "checkpoint", "dataset", "results", "bundles_dir", "overrides"):
            if text.startswith(f"{argument}: "):
                option = "NAME" if argument == "name" else "--" + {"overrides": "set"}.get(argument, argument)
                text = option.replace("_", "-") + text[len(argument):]
                break
        raise InputError(text) from None
    print(f"bundle written to {out}")
    print(f"  cd {out} && python -m monai.bundle run --config_file configs/train.yaml "
          "--meta_file configs/metadata.json")
    return 0
