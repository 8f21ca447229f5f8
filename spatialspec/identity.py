"""Run identity: a fingerprint of everything that determines a training run's result, so that a checkpoint, a
``model.pt`` or a ``results.json`` record is resumed or reused only by the run that would have made it.

A study's figures (Saab et al. 2022, Sec. 3.3.2 and 5) come from many runs written into folders that outlive the
command; rerunning with another level, other data-model parameters or another datalist in the same folder must not
pick up the old model. The fingerprint holds, as plain JSON fields:

- ``run_params``: the bundle's run parameters (bundle, level, score, seed, epochs, learning rate, batch size, label
  budget, method options, data-model parameters; see each bundle's ``run_params``), with the datalist path replaced by
  the SHA-256 of its content (``datalist_sha256``) and the data-model parameters dropped when a datalist is used;
- ``network``: the network's class and the SHA-256 of its module tree (``repr``), so any architecture change counts;
- ``loss``: the loss's class and its plain settings; ``optimizer``: its class and ``defaults`` (learning rate, betas,
  weight decay, ...);
- ``settings``: further settings a bundle passes (selection rule, early stopping, AMP, validation interval);
- ``spatialspec``: the package version.

``digest`` is the SHA-256 of the canonical JSON of the fields. :func:`fingerprint_differences` names the fields that
differ, which :func:`check_fingerprint` turns into one :class:`~spatialspec.errors.RunIdentityError`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from spatialspec.errors import RunIdentityError

__all__ = ["run_fingerprint", "fingerprint_differences", "check_fingerprint", "read_fingerprint_file",
           "write_fingerprint_file", "file_sha256", "FINGERPRINT_FILE", "FINGERPRINT_TAG"]

#: the file beside ``models/model.pt`` that names the run which wrote it
FINGERPRINT_FILE = "fingerprint.json"
#: the MLflow tag (and param) holding a run's digest
FINGERPRINT_TAG = "spatialspec.fingerprint"


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as canonical JSON data: tuples as lists, non-finite floats as text, objects by their class and public
    settings (:func:`_object_identity`), never by their address."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return repr(value) if math.isnan(value) or math.isinf(value) else value
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return _plain(value.item(), depth)  # numpy scalars
    return _object_identity(value, depth)


#: attributes that are not settings: MONAI's per-transform random generator, and the image readers LoadImage found
#: installed (they differ between environments, the images they read do not)
_NOT_SETTINGS = frozenset({"R", "readers"})
#: how deep :func:`_object_identity` follows objects inside objects (a Compose of transforms is two levels)
_MAX_DEPTH = 4


def _object_identity(value: Any, depth: int = 0) -> dict[str, Any]:
    """Class and public attributes (followed :data:`_MAX_DEPTH` levels deep) of an object without a JSON form, such
    as a transform pipeline or an augmentation: its settings count, its memory address and RNG state do not."""
    fields: dict[str, Any] = {"class": f"{type(value).__module__}.{type(value).__qualname__}"}
    attributes = getattr(value, "__dict__", None)
    if not attributes:
        text = repr(value)
        if " at 0x" not in text and not callable(value):
            fields["repr"] = text
        return fields
    if depth >= _MAX_DEPTH:
        return fields
    for name, attr in sorted(attributes.items()):
        if name.startswith("_") or name in _NOT_SETTINGS or isinstance(attr, type) or inspect.isroutine(attr):
            continue
        fields[name] = _plain(attr, depth + 1)
    return fields


def _module_identity(module: Any) -> dict[str, Any]:
    """Class and SHA-256 of the module tree of a network (or any object with a stable ``repr``)."""
    inner = getattr(module, "module", module)  # a DistributedDataParallel wrap trains the same network
    text = repr(inner)
    return {"class": f"{type(inner).__module__}.{type(inner).__qualname__}",
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _loss_identity(loss: Any) -> dict[str, Any]:
    """Class and plain (number, string, bool) attributes of a loss; nested modules by their identity."""
    fields: dict[str, Any] = {"class": f"{type(loss).__module__}.{type(loss).__qualname__}"}
    for name, value in sorted(vars(loss).items()):
        if name.startswith("_") or name == "training":
            continue
        if isinstance(value, (bool, int, float, str, type(None))):
            fields[name] = value
    for name, child in sorted(getattr(loss, "_modules", {}).items()):
        fields[f"module.{name}"] = _module_identity(child)["sha256"]
    return fields


def _optimizer_identity(optimizer: Any) -> dict[str, Any]:
    """Class and ``defaults`` of a torch optimizer (learning rate, betas, weight decay, ...)."""
    defaults = {k: v for k, v in getattr(optimizer, "defaults", {}).items()
                if k not in ("foreach", "capturable", "differentiable", "fused")}  # speed switches, same result
    return {"class": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}", **_plain(defaults)}


def run_fingerprint(run_params: Mapping[str, Any], network: Any = None, loss: Any = None, optimizer: Any = None,
                    settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of a training run (see the module docstring).

    Args:
        run_params: the bundle's ``run_params`` (must name ``bundle``); ``datalist`` is replaced by the SHA-256 of
            the file's content.
        network: the trained network (its architecture counts, not its weights).
        loss: the training loss.
        optimizer: the optimizer (its class and default hyper-parameters count).
        settings: further settings that change the result (e.g. ``select``, ``early_stop_patience``, ``amp``).

    Returns:
        ``{"digest": <sha256 hex>, "fields": {...}}``, JSON-serialisable.

    Raises:
        InputError: if the datalist named by ``run_params`` cannot be read.
    """
    from spatialspec import __version__
    from spatialspec.errors import InputError

    params = dict(run_params)
    datalist = params.pop("datalist", None)
    if datalist:
        try:
            params["datalist_sha256"] = file_sha256(Path(datalist).expanduser())
        except OSError as e:
            raise InputError(f"datalist {datalist}: cannot read it ({e.strerror or e})") from None
        params.pop("synthetic", None)  # ignored with a datalist
    fields: dict[str, Any] = {"run_params": _plain(params), "spatialspec": __version__}
    if network is not None:
        fields["network"] = _module_identity(network)
    if loss is not None:
        fields["loss"] = _plain(_loss_identity(loss))
    if optimizer is not None:
        fields["optimizer"] = _optimizer_identity(optimizer)
    if settings:
        fields["settings"] = _plain(dict(settings))
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return {"digest": hashlib.sha256(canonical.encode()).hexdigest(), "fields": fields}


def _flatten(fields: Mapping[str, Any] | list, prefix: str = "") -> dict[str, Any]:
    """Dotted names for every leaf: ``synthetic.rho``, ``settings.augmentation.transforms.1.prob``."""
    flat: dict[str, Any] = {}
    items = fields.items() if isinstance(fields, Mapping) else enumerate(fields)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (Mapping, list)) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def fingerprint_differences(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """The fields in which two fingerprints differ, as ``name: stored -> current`` lines (``run_params.`` is left
    out of the names: ``level: 'seg' -> 'binary'``); empty when the digests are equal.

    A fingerprint from before run identity was recorded (``None`` or without ``fields``) differs in everything.
    """
    if stored is not None and stored.get("digest") == current.get("digest"):
        return []
    if not stored or not isinstance(stored.get("fields"), Mapping):
        return ["(no fingerprint recorded: made by an older spatialspec or another tool)"]
    old, new = _flatten(stored["fields"]), _flatten(current["fields"])
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            name = key.removeprefix("run_params.")
            lines.append(f"{name}: {_short(old.get(key, '<unset>'))} -> {_short(new.get(key, '<unset>'))}")
    return lines or ["(equal fields, different digest: made by another fingerprint scheme)"]


def check_fingerprint(stored: Mapping[str, Any] | None, current: Mapping[str, Any], what: str,
                      ways_out: Iterable[str] = ()) -> None:
    """Refuse to reuse or resume ``what`` unless it was made by a run with the ``current`` fingerprint.

    Args:
        stored: the fingerprint recorded with the result (``None``: none recorded).
        current: the fingerprint of the run that would reuse it.
        what: the file or folder, named in the message.
        ways_out: what the user can do instead, named in the message.

    Raises:
        RunIdentityError: one line naming ``what``, the fields that differ and the ways out.
    """
    differences = fingerprint_differences(stored, current)
    if not differences:
        return
    shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more" if len(differences) > 8 else "")
    ways = list(ways_out)
    advice = f" Ways out: {'; or '.join(ways)}." if ways else ""
    raise RunIdentityError(f"{what} was made by a run with other settings ({shown}); it is left untouched.{advice}")


def read_fingerprint_file(path: str | os.PathLike) -> dict[str, Any] | None:
    """The fingerprint stored in ``path`` (``models/fingerprint.json``), ``None`` if there is none.

    Raises:
        InputError: if the file exists but is not a fingerprint.
    """
    from spatialspec.errors import InputError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable run fingerprint ({e})") from None
    if not isinstance(content, dict) or not isinstance(content.get("digest"), str):
        raise InputError(f"{path}: not a run fingerprint (no 'digest')")
    return content


def write_fingerprint_file(path: str | os.PathLike, fingerprint: Mapping[str, Any]) -> Path:
    """Write ``fingerprint`` to ``path`` atomically."""
    from spatialspec.atomic import write_json_atomic

    return write_json_atomic(path, dict(fingerprint))
