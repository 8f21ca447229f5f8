"""Atomic file writes: a temporary file in the target folder, then ``os.replace``, so a reader (or a crash) never sees
half a file. Every result file spatialspec writes goes through here."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json_atomic", "save_figure_atomic", "removed_on_error", "replace_folder"]


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (creating the folder); returns the path.

    Raises:
        IsADirectoryError: naming ``path`` when it is a folder (an output file was expected).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: expected the name of a file to write")
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


@contextmanager
def removed_on_error(path: str | os.PathLike, keep: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """Undo what the block created at ``path`` if it raises an ``Exception``, unless ``keep()`` says the block produced
    something worth keeping; so a command that fails leaves its ``--out`` as it was.

    If ``path`` did not exist, it is removed (a file or a whole folder) with the folders above it that the block
    created. If it was a folder, the entries the block added directly inside it are removed; what was there before is
    never removed (a file the block rewrote stays rewritten). ``KeyboardInterrupt`` keeps everything: an interrupted
    run resumes from what it wrote.

    Yields:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    created = None
    for candidate in (*reversed(path.absolute().parents), path.absolute()):
        if not os.path.lexists(candidate):
            created = candidate  # the outermost folder (or the file) this block may create
            break
    before = set(os.listdir(path)) if created is None and path.is_dir() else None
    try:
        yield path
    except Exception:
        if not keep():
            if created is not None:
                _remove(created)
            elif before is not None and path.is_dir():
                for name in set(os.listdir(path)) - before:
                    _remove(path / name)
        raise


def _remove(path: Path) -> None:
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_folder(built: str | os.PathLike, out: str | os.PathLike, staging: str | os.PathLike) -> Path:
    """Move the finished folder ``built`` to ``out`` with renames only, so that ``out`` is the old folder or the new
    one, never a mix: a previous ``out`` is first moved aside into ``staging`` (on the same file system; the caller
    removes ``staging``) and put back if the last rename fails."""
    built, out, old = Path(built), Path(out), Path(staging) / "replaced"
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(built, out)
    except OSError:
        if old.exists():
            os.replace(old, out)  # put the previous folder back
        raise
    return out
