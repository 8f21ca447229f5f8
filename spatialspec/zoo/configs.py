"""Config surgery for exported bundles: merge a config chain, keep what a workflow reaches, write YAML.

A spatialspec source bundle is a chain of overlays (:func:`spatialspec.registry.config_files`) merged by
:meth:`monai.bundle.ConfigParser.load_config_files`; a model-zoo bundle is self-contained. The functions here turn
one into the other without changing what MONAI parses:

- :func:`merge_chain` merges a chain as ``python -m monai.bundle run --config_file a,b,c`` does;
- :func:`merge_overlays` joins overlay files into one overlay, valid when merged after the same base;
- :func:`resolve_file_macros` replaces ``%file#id`` macros that point at other files by their content (local
  ``%id`` macros stay: they resolve inside the exported file);
- :func:`reachable` keeps only the ids a workflow's roots reach through ``@`` references and ``%`` macros (a
  self-contained ``inference.yaml`` without the training engines);
- :func:`dump_yaml` writes a config keeping its key order, and checks that it reads back unchanged.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from spatialspec.errors import InputError

__all__ = ["merge_chain", "merge_overlays", "resolve_file_macros", "references", "reachable", "dump_yaml"]

_SEP = "::"


def _parser_class() -> Any:
    from monai.bundle import ConfigParser  # MONAI only when a bundle is exported

    return ConfigParser


def merge_chain(files: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """The config that ``python -m monai.bundle run --config_file f1,f2,...`` reads: ``files`` merged in order by
    :meth:`monai.bundle.ConfigParser.load_config_files` (nested ``a#b`` keys and ``+`` merge keys applied)."""
    if not files:
        raise ValueError("files: at least one config file is needed")
    return _parser_class().load_config_files([str(f) for f in files])


def merge_overlays(files: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """One overlay equivalent to merging ``files`` one after the other on any base: their top-level entries in order,
    a later entry replacing an earlier one of the same key.

    Raises:
        ValueError: when two files both extend one id with a ``+`` key (no single overlay says that).
    """
    load = _parser_class().load_config_file
    overlay: dict[str, Any] = {}
    for file in files:
        for key, value in load(str(file)).items():
            if key.startswith("+") and key in overlay:
                raise ValueError(f"{file}: '{key}' extends an id another overlay extends too; merge them by hand")
            overlay.pop(key, None)  # the later file's position, as a reader of the chain sees it
            overlay[key] = value
    return overlay


def _locate(path: str, search: Sequence[Path]) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
    else:
        for folder in search:
            if (folder / candidate).is_file():
                return folder / candidate
    raise InputError(f"config macro '%{path}': no such file (looked in {[str(s) for s in search] or ['/']})")


def resolve_file_macros(config: Any, search: Sequence[str | os.PathLike] = ()) -> Any:
    """``config`` with every ``%path/file.yaml#id`` macro replaced by a copy of that file's ``id`` (as MONAI's
    parser does when it parses), so that the config no longer needs the file. Relative paths are looked up in
    ``search`` in order (MONAI reads them relative to the working directory: give it first). Macros without a file
    (``%id``, ``%#id``) are kept.

    Raises:
        InputError: naming the macro whose file is not found.
    """
    parser_class = _parser_class()
    folders = [Path(s) for s in search]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, str) and value.startswith("%"):
            path, ids = parser_class.split_path_id(value[1:])
            if path:
                content = parser_class.load_config_file(str(_locate(path, folders)))
                return resolve(copy.deepcopy(parser_class(config=content)[ids]))
        return value

    return resolve(config)


def _normalize(id_: str | int) -> str:
    return str(id_).replace("#", _SEP)


def _children(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        return ((str(k), v) for k, v in value.items())
    if isinstance(value, list):
        return ((str(i), v) for i, v in enumerate(value))
    return ()


def references(value: Any, id_: str) -> set[str]:
    """The ids that ``value`` (the content of ``id_``) refers to: ``@id`` references, in plain strings and in ``$``
    expressions, and local ``%id`` macros, relative ids (``@#x``, ``%##y``) made absolute."""
    parser_class = _parser_class()
    from monai.bundle.reference_resolver import ReferenceResolver

    found: set[str] = set()

    def walk(item: Any, item_id: str) -> None:
        if isinstance(item, str):
            text = parser_class.resolve_relative_ids(item_id, item)
            found.update(_normalize(r) for r in ReferenceResolver.match_refs_pattern(text))
            if text.startswith("%"):
                path, ids = parser_class.split_path_id(text[1:])
                if not path:
                    found.add(_normalize(ids))
            return
        for key, child in _children(item):
            walk(child, f"{item_id}{_SEP}{key}" if item_id else key)

    walk(value, _normalize(id_))
    return found


def _node(config: Any, id_: str) -> tuple[bool, Any]:
    node = config
    for part in id_.split(_SEP):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _whole(config: dict, id_: str) -> str:
    """``id_``, or its outermost ancestor that is a list: a list is kept whole (dropping an item would renumber the
    ids of the others)."""
    parts = id_.split(_SEP)
    for n in range(1, len(parts)):
        _, node = _node(config, _SEP.join(parts[:n]))
        if isinstance(node, list):
            return _SEP.join(parts[:n])
    return id_


def reachable(config: Mapping[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """The part of ``config`` that ``roots`` (ids; those absent are skipped) reach through references and macros:
    each kept id with its whole content, and the dicts above it with only the kept keys, in their order. MONAI
    parses an id by its own content and what it refers to, so the kept part parses every root as ``config`` does.

    Raises:
        KeyError: naming an id that a kept id refers to but ``config`` lacks (the config is broken as it is).
    """
    config = dict(config)
    kept: set[str] = set()
    pending = [_normalize(r) for r in roots if _node(config, _normalize(r))[0]]
    while pending:
        id_ = _whole(config, pending.pop())
        if id_ in kept:
            continue
        kept.add(id_)
        _, value = _node(config, id_)
        for ref in references(value, id_):
            if not _node(config, ref)[0]:
                raise KeyError(f"'{id_}' refers to '{ref}', which the config does not define")
            pending.append(ref)

    def prune(value: Any, id_: str) -> Any:
        out = {}
        for key, child in value.items():
            child_id = f"{id_}{_SEP}{key}" if id_ else str(key)
            if child_id in kept:
                out[key] = child
            elif isinstance(child, dict) and any(k.startswith(child_id + _SEP) for k in kept):
                out[key] = prune(child, child_id)
        return out

    return prune(config, "")


class _Dumper(yaml.SafeDumper):
    """YAML in the bundles' style: block mappings, short lists of plain scalars in flow style (``keys: [image,
    label]``), lists of expressions one per line."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    scalars = all(isinstance(v, (int, float, bool)) or v is None or isinstance(v, str) and not v.startswith("$")
                  for v in data)
    flow = bool(data) and scalars and len(repr(data)) <= 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(config: Mapping[str, Any], path: str | os.PathLike, header: str = "") -> Path:
    """Write ``config`` as YAML to ``path``, keys in their order, after ``header`` (comment lines, ``# `` added),
    and check that MONAI reads back the same content.

    Raises:
        RuntimeError: if the file does not read back as ``config`` (a value YAML cannot represent faithfully).
    """
    path = Path(path)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False, width=116, allow_unicode=True)
    path.write_text(comment + body)
    if _parser_class().load_config_file(str(path)) != dict(config):
        raise RuntimeError(f"{path} does not read back as the config written")
    return path
