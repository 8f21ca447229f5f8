"""The HTML report of a study (issue 16, part 3): one self-contained page people read, with the study's table per
level, method and score, the pair AUROCs per subgroup, the figures, the data and run settings and the saliency audit.

``spatialspec report RESULTS_DIR`` (or ``--tracking-uri URI --experiment NAME``) writes it; ``spatialspec study``
writes ``report.html`` beside ``results.json``. Reading results needs neither torch nor MONAI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .data import ReportData, load_folder, load_mlflow, load_saliency, read_summary_csv
from .page import render_report, write_report

__all__ = ["ReportData", "load_folder", "load_mlflow", "load_saliency", "read_summary_csv", "render_report",
           "write_report", "write_study_report"]


def write_study_report(out_dir: str | os.PathLike, records: list[dict[str, Any]], rows: list[dict[str, Any]],
                       path: str | os.PathLike | None = None) -> Path:
    """Write ``<out_dir>/report.html`` for a study that just finished (what ``spatialspec study`` calls).

    Args:
        out_dir: the study folder (``study.json``, the predictions files and any ``saliency/`` are read from it).
        records: the study's records (``results.json``).
        rows: its :func:`spatialspec.study.summarize` rows (with the intervals already computed).
        path: where to write (default ``<out_dir>/report.html``).

    Returns:
        the path written.
    """
    data = load_folder(out_dir, records=records, rows=rows)
    return write_report(data, Path(path) if path else Path(out_dir) / "report.html")
