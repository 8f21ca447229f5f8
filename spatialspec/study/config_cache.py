"""A study's bundle configs read once per process (issue 17: per-run config parsing).

Every run of a study builds two or three MONAI workflows from the same overlay chains (:mod:`spatialspec.registry`):
the run identity's, the training one and the test evaluation. MONAI parses each YAML file again for every workflow
(pure-Python YAML, about 20 ms a file). Here a chain is merged once, by MONAI's own
:meth:`~monai.bundle.ConfigParser.load_config_files` (its ``+`` merge keys and duplicate-key checks), and kept as one
JSON file in a folder private to the process; later workflows of the same chain read that file. A chain is keyed by
each file's path, size and modification time, so an edited config is read again.
"""

from __future__ import annotations

import atexit
import copy
import itertools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["merged_config", "merged_config_file", "clear_config_cache"]

_lock = threading.Lock()
_merged: dict[tuple, dict] = {}
_files: dict[tuple, str | None] = {}
_folder: list[str] = []
_numbers = itertools.count()


def _key(files: Sequence[str | os.PathLike]) -> tuple:
    key = []
    for f in files:
        stat = os.stat(f)
        key.append((str(Path(f).resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(key)


def _load(files: Sequence[str | os.PathLike], key: tuple) -> dict:
    if key not in _merged:
        from monai.bundle import ConfigParser

        _merged[key] = ConfigParser.load_config_files([str(f) for f in files])
    return _merged[key]


def merged_config(files: Sequence[str | os.PathLike]) -> dict:
    """The configs ``files`` merged in order as MONAI merges them (a copy the caller may change)."""
    with _lock:
        return copy.deepcopy(_load(files, _key(files)))


def merged_config_file(files: Sequence[str | os.PathLike]) -> list[str]:
    """The config file list to give a MONAI workflow for ``files``: one JSON file holding their merged content, or
    ``files`` themselves where the content is not plain JSON data (a YAML date, say)."""
    with _lock:
        key = _key(files)
        if key not in _files or (_files[key] is not None and not os.path.isfile(_files[key])):
            content = _load(files, key)
            if not _folder:
                _folder.append(tempfile.mkdtemp(prefix="spatialspec-configs-"))
                atexit.register(shutil.rmtree, _folder[0], True)
            path = os.path.join(_folder[0], f"chain-{next(_numbers)}.json")
            try:
                text = json.dumps(content)
            except (TypeError, ValueError):
                _files[key] = None
            else:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
                _files[key] = path
        cached = _files[key]
    return [str(f) for f in files] if cached is None else [cached]


def clear_config_cache() -> None:
    """Forget every merged chain (their files are removed at exit)."""
    with _lock:
        _merged.clear()
        _files.clear()
