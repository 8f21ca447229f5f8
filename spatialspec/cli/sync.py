"""``spatialspec sync``: push MLflow records buffered while the tracking server was unreachable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sync`` command."""
    parser = sub.add_parser("sync", help="push buffered MLflow records to the tracking server",
                            description="Replay the MLflow records a run buffered (mlflow_buffer.jsonl) while its "
                                        "tracking server was unreachable: params, metrics with their steps and "
                                        "timestamps, artifacts. Records already in the store are skipped; on "
                                        "success the buffer is renamed to <buffer>.synced.")
    parser.add_argument("--buffer", action="append", required=True, metavar="FILE",
                        help="buffer file, repeatable (e.g. runs/study/mlflow_buffer.jsonl)")
    parser.add_argument("--tracking-uri", help="replay into this store (default: the URI the records were meant for)")
    parser.set_defaults(handler=_sync)


def _sync(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from spatialspec.tracking import sync_buffer
    from spatialspec.tracking.sync import synced_path

    status = 0
    for buffer in args.buffer:
        path = Path(buffer)
        if not path.exists() and synced_path(path).exists():
            print(f"{path}: already synced ({synced_path(path)}); nothing to do")
            continue
        try:
            report = sync_buffer(path, args.tracking_uri)
        except MlflowException as e:
            print(f"spatialspec sync: {path}: the tracking store could not be reached or refused the records; the "
                  f"buffer is kept: {' '.join(str(e).split())[:300]}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}:\n{report.summary()}")
    return status
