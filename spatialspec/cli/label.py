"""``spatialspec label-app``: lay out (and optionally serve) the spatialspec MONAI Label app."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path

__all__ = ["register", "start_server_command"]


def _pairs(option: str, items: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{option} {item!r} must look like NAME=PATH")
        pairs[name.strip()] = value.strip()
    return pairs


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``label-app`` command."""
    parser = sub.add_parser("label-app", help="lay out the MONAI Label app with bundles and checkpoints",
                            description="Without --out, print where the packaged MONAI Label app lives. With --out, "
                                        "copy it and put each named model's bundle and checkpoint in "
                                        "OUT/model/<name>, ready for `monailabel start_server`; with --serve, also "
                                        "start the server (bound to 127.0.0.1 unless --host says otherwise). Runs "
                                        "in the label environment (bash scripts/install.sh --label).")
    parser.add_argument("--out", help="the app folder to create")
    parser.add_argument("--checkpoint", action="append", metavar="NAME=FILE",
                        help="trained checkpoint of a model (segmentation, bbox, binary), repeatable, e.g. "
                             "segmentation=bundles/segmentation/eval/models/model.pt")
    parser.add_argument("--bundle", action="append", metavar="NAME=DIR",
                        help="serve this bundle folder under NAME instead of the default one, repeatable")
    parser.add_argument("--bundles-dir", help="where the spatialspec bundles live (default: $SPATIALSPEC_BUNDLES or "
                                              "the checkout's bundles/)")
    parser.add_argument("--dataset", choices=("siim", "isic"),
                        help="the models were trained on this data set: serve them with its training preprocessing "
                             "(DICOM or JPEG/PNG in, resized to image_size; default: the synthetic data's)")
    parser.add_argument("--paper-scale", action="store_true",
                        help="the checkpoints are of the paper-scale networks (App. A.1, A.2)")
    parser.add_argument("--set", dest="settings", action="append", metavar="ID=VALUE",
                        help="a setting written into the exported configs (YAML value), repeatable, e.g. "
                             "--set image_size=256 for a model trained at that size")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--serve", action="store_true", help="then run `monailabel start_server` on the app")
    parser.add_argument("--studies", help="with --serve: the studies folder (images; labels go to labels/final)")
    parser.add_argument("--host", default="127.0.0.1", help="with --serve: address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="with --serve: port (default 8000)")
    parser.set_defaults(handler=_label_app)


def start_server_command(app: str | os.PathLike, studies: str, models: list[str], host: str = "127.0.0.1",
                         port: int = 8000) -> list[str]:
    """The ``monailabel start_server`` command line that serves ``models`` of ``app``."""
    return ["monailabel", "start_server", "--app", str(app), "--studies", studies, "--host", host,
            "--port", str(port), "--conf", "models", ",".join(models)]


def _label_app(args: argparse.Namespace) -> int:
    from spatialspec.cli.bundle import parse_settings
    from spatialspec.label import install_label_app, packaged_app_dir

    if not args.out:
        if args.checkpoint or args.serve:
            raise ValueError("--out: name the app folder to create")
        print(packaged_app_dir())
        return 0
    if args.serve and not args.studies:
        raise ValueError("--serve needs --studies DIR")
    if args.serve and importlib.util.find_spec("monailabel") is None:
        raise ValueError("--serve: monailabel is not installed in this environment; run `bash scripts/install.sh "
                         "--label` and use .venv-label/bin/spatialspec")
    checkpoints = _pairs("--checkpoint", args.checkpoint)
    out = install_label_app(args.out, checkpoints, bundles=_pairs("--bundle", args.bundle),
                            bundles_dir=args.bundles_dir, force=args.force, dataset=args.dataset,
                            paper_scale=args.paper_scale, overrides=parse_settings(args.settings))
    command = start_server_command(out, args.studies or "STUDIES", list(checkpoints), args.host, args.port)
    print(f"MONAI Label app written to {out} (models: {', '.join(checkpoints)})")
    if not args.serve:
        print("start it with:\n  " + shlex.join(command))
        return 0
    studies = str(Path(args.studies).resolve())
    command[command.index("--studies") + 1] = studies
    sys.stdout.flush()
    # the server replaces this process, so Ctrl-C and the PID reach uvicorn directly
    os.execv(sys.executable, [sys.executable, "-m", "monailabel.main", *command[1:]])
    return 0  # pragma: no cover
