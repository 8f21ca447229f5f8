"""What ``spatialspec sweep run`` accepts from a sweep file: only ``python -m monai.bundle run`` commands of the sweep's
own bundles, with plain override values, under a file-name-safe run key.

A sweep file is a JSON file that may travel between people and machines; its entries are executed. MONAI's config
overrides are code where they start with ``$`` (evaluated), ``%`` (a macro that loads another file) or ``@``, or
where a dict names ``_target_`` (a callable that is instantiated), and ``monai.bundle run`` itself takes files that
configure code (``--args_file``, ``--logging_file``, a ``--tracking`` settings file). :func:`check_sweep_entry`
refuses all of these, except the one expression ``sweep create`` writes itself: ``--output_dir "$'<the entry's
output_dir>'"`` (an expression so that MONAI's tracking patch can append to it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from spatialspec._deprecated import moved_names
from spatialspec.errors import InputError

__all__ = ["check_sweep_entry", "SAFE_KEY", "BUNDLE_COMMAND"]

__getattr__ = moved_names(__name__, {"check_plan_entry": "spatialspec.sweep.checks.check_sweep_entry"})

#: a run key, also a log file's name: letters, digits, ``.``, ``_`` and ``-``, not starting with ``.`` or ``-``
SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
#: how every command of a sweep file starts
BUNDLE_COMMAND = ("python", "-m", "monai.bundle", "run")
_OPTION = re.compile(r"^--[A-Za-z][A-Za-z0-9_]*(#[A-Za-z0-9_]+)*$")
_RUNNER_FILES = ("args_file", "logging_file")  # monai.bundle run options that load files configuring code
_CODE_PREFIXES = ("$", "%", "@")
_CODE_KEYS = re.compile(r"^_[a-z]+_$")  # _target_, _requires_, _disabled_, _mode_, _desc_


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _code_in(value: Any) -> str | None:
    """The first part of an override value that MONAI would run as code, or ``None``."""
    if isinstance(value, str):
        return value if value.startswith(_CODE_PREFIXES) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (_CODE_KEYS.match(key) or key.startswith(_CODE_PREFIXES)):
                return key
            found = _code_in(item)
            if found is not None:
                return found
    if isinstance(value, (list, tuple, set)):
        for item in value:
            found = _code_in(item)
            if found is not None:
                return found
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def check_sweep_entry(sweep: dict[str, Any], index: int, run: dict[str, Any], source: str = "sweep") -> None:
    """Refuse a sweep entry that is not a plain ``monai.bundle run`` of one of the sweep's bundles.

    Args:
        sweep: the sweep file's content (its ``bundles_dir`` and ``out_dir`` bound what an entry may name).
        index: the entry's index, named in the error.
        run: the entry (``key``, ``bundle``, ``output_dir``, ``argv``).
        source: the sweep file, named in the error.

    Raises:
        InputError: naming the file, entry and argument at fault.
    """
    where = f"{source}: runs[{index}]"
    key = run.get("key")
    if not isinstance(key, str) or not SAFE_KEY.match(key):
        raise InputError(f"{where}: key {key!r} is not a safe run name (letters, digits, '.', '_', '-')")
    argv = run.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise InputError(f"{where} ({key}): argv must be a list of strings")
    if tuple(argv[:4]) != BUNDLE_COMMAND:
        raise InputError(f"{where} ({key}): only '{' '.join(BUNDLE_COMMAND)} ...' commands are run, not "
                         f"{' '.join(argv[:4])!r}")
    bundles_dir, bundle = sweep.get("bundles_dir"), run.get("bundle")
    if not isinstance(bundles_dir, str) or not isinstance(bundle, str) or not SAFE_KEY.match(bundle):
        raise InputError(f"{where} ({key}): the sweep names no bundles_dir or the entry no bundle; write the "
                         "sweep file again with `spatialspec sweep create`")
    out_dir = Path(str(sweep.get("out_dir", "")))
    output_dir = run.get("output_dir")
    if not isinstance(output_dir, str) or not _inside(Path(output_dir), out_dir):
        raise InputError(f"{where} ({key}): output_dir {output_dir!r} is not inside the sweep's out_dir {out_dir}")
    rest = argv[4:]
    if len(rest) % 2:
        raise InputError(f"{where} ({key}): arguments must come as '--name value' pairs")
    for name, value in zip(rest[::2], rest[1::2]):
        if not _OPTION.match(name):
            raise InputError(f"{where} ({key}): {name!r} is not an option name")
        option = name[2:]
        if option in _RUNNER_FILES or any(_CODE_KEYS.match(part) for part in option.split("#")):
            raise InputError(f"{where} ({key}): {name} is not accepted in a sweep file")
        if option in ("config_file", "meta_file"):
            paths = _literal(value) if option == "config_file" and value.startswith("[") else value
            for path in paths if isinstance(paths, list) else [paths]:
                # the bundle's configs and those it overlays (common/, its model family): bundles_dir/*/configs/*
                if not isinstance(path, str) or not (_inside(Path(path), Path(bundles_dir)) and Path(path).is_file()
                                                     and Path(path).parent.name == "configs"):
                    raise InputError(f"{where} ({key}): {name} {path!r} is not a config file of the sweep's bundles "
                                     f"({bundles_dir})")
            continue
        if option == "bundle_root":
            if Path(value).resolve() != (Path(bundles_dir) / bundle).resolve():
                raise InputError(f"{where} ({key}): --bundle_root {value!r} is not the bundle {bundle}")
            continue
        if option == "output_dir":
            if value != "$" + repr(output_dir):
                raise InputError(f"{where} ({key}): --output_dir must be the entry's output_dir")
            continue
        if option == "tracking" and value != "mlflow":
            raise InputError(f"{where} ({key}): --tracking {value!r}: only 'mlflow' is accepted in a sweep file")
        code = _code_in(_literal(value)) or _code_in(value)
        if code is not None:
            raise InputError(f"{where} ({key}): {name} holds a config expression or reference ({code[:40]!r}); "
                             "sweep files run plain values only (run such a command yourself)")

