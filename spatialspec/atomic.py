"""Atomic file writes: a temporary file in the target folder, then ``os.replace``, so a reader (or a crash) never sees
half a file. Every result file spatialspec writes goes through here."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json_atomic", "save_figure_atomic"]


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, content: Any) -> Path:
    """Write ``content`` as indented JSON, atomically (NaN is written as ``NaN``, as Python's json reads it)."""
    return atomic_write(path, json.dumps(content, indent=1, allow_nan=True))


def save_figure_atomic(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render a matplotlib figure as PNG and write it atomically; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write(path, buffer.getvalue())
