"""``spatialspec report``: one self-contained HTML report of a study, from its folder or from MLflow
(:mod:`spatialspec.report`). Reads results only: no torch, no MONAI."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` command."""
    parser = sub.add_parser(
        "report", help="write a study's self-contained HTML report (tables, figures, settings, saliency)",
        description="Write one self-contained HTML file (inline CSS, images embedded, no script, no external request) "
                    "with the study's table per level, method and score (with 95% intervals where the study has "
                    "them), the pair AUROCs per subgroup, the figures, the data-model or data-set parameters, each "
                    "run's settings and MLflow run id, and the saliency audit of `spatialspec audit --saliency`.")
    parser.add_argument("results", nargs="?", metavar="RESULTS_DIR",
                        help="a study folder (--out of `spatialspec study`); or give --tracking-uri and --experiment")
    parser.add_argument("--out", metavar="FILE",
                        help="the HTML file to write (default: RESULTS_DIR/report.html, or report.html from MLflow)")
    parser.add_argument("--tracking-uri", metavar="URI", help="read the study from this MLflow store instead")
    parser.add_argument("--experiment", metavar="NAME", help="the study's MLflow experiment (with --tracking-uri)")
    parser.add_argument("--saliency", metavar="DIR",
                        help="folder of the saliency audit's saliency.json (default: RESULTS_DIR/saliency if there)")
    parser.add_argument("--title", default="spatialspec study report", help="the page title (default: %(default)s)")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from spatialspec.errors import InputError
    from spatialspec.report import load_folder, load_mlflow, write_report

    from_mlflow = args.tracking_uri is not None or args.experiment is not None
    if from_mlflow and args.results is not None:
        raise InputError("give RESULTS_DIR or --tracking-uri with --experiment, not both")
    if from_mlflow and not (args.tracking_uri and args.experiment):
        raise InputError("--tracking-uri and --experiment go together: give both to read a study from MLflow")
    if not from_mlflow and args.results is None:
        raise InputError("RESULTS_DIR is required (a study folder), or --tracking-uri with --experiment")
    if from_mlflow:
        data = load_mlflow(args.tracking_uri, args.experiment, saliency=args.saliency)
        out = Path(args.out or "report.html")
    else:
        data = load_folder(args.results, saliency=args.saliency)
        out = Path(args.out) if args.out else Path(args.results) / "report.html"
    path = write_report(data, out, title=args.title)
    print(f"report: {path} ({path.stat().st_size:,} bytes)")
    return 0
