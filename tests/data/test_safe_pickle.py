"""The restricted unpickler for the chest-tube label pickle (spatialspec.data.safe_pickle)."""

from __future__ import annotations

import os
import pickle
import shlex

import numpy as np
import pytest

from spatialspec.data.safe_pickle import RestrictedUnpickler, UnsafePickleError, load_label_dict, safe_loads

LABELS = {"1.2.276.0.7230010.3.1.4.8323329.1000.1517875165.878027": True,
          "1.2.276.0.7230010.3.1.4.8323329.10001.1517875220.930580": False,
          "1.2.276.0.7230010.3.1.4.8323329.10002.1517875220.939397": True}


class _Payload:
    """Unpickling this runs a shell command (what a malicious cxr_tube_dict.pkl could do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_dict_loads_in_every_protocol(tmp_path, protocol):
    path = tmp_path / "tubes.pkl"
    path.write_bytes(pickle.dumps(LABELS, protocol=protocol))
    loaded = load_label_dict(path)
    assert loaded == LABELS
    assert list(loaded) == list(LABELS)  # the file's order
    assert all(type(v) is bool for v in loaded.values())


def test_int_values_become_bools(tmp_path):
    path = tmp_path / "tubes.pkl"
    path.write_bytes(pickle.dumps({"a": 1, "b": 0, "c": True}))
    assert load_label_dict(path) == {"a": True, "b": False, "c": True}


def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "executed"
    payload = pickle.dumps({"1.2.3": _Payload(f"touch {shlex.quote(str(marker))}")})
    path = tmp_path / "cxr_tube_dict.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"cxr_tube_dict\.pkl.*refused.*system") as info:
        load_label_dict(path)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()
    # control: the same bytes given to the standard unpickler do run the command, so the payload is live
    pickle.loads(payload)
    assert marker.exists()


def test_malicious_top_level_object_refused(tmp_path):
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Payload(f"touch {shlex.quote(str(marker))}"), protocol=0)
    with pytest.raises(UnsafePickleError, match="refused"):
        safe_loads(payload, source="evil.pkl")
    assert not marker.exists()


def test_find_class_refuses_everything():
    unpickler = RestrictedUnpickler(__import__("io").BytesIO(b""), source="x.pkl")
    for module, name in (("builtins", "dict"), ("builtins", "bool"), ("numpy", "bool_"), ("os", "system")):
        with pytest.raises(UnsafePickleError, match=rf"x\.pkl.*{module}\.{name}"):
            unpickler.find_class(module, name)


def test_numpy_values_are_refused(tmp_path):
    # numpy scalars need find_class: refused before numpy is asked for anything
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps({"a": np.bool_(True)}))
    with pytest.raises(UnsafePickleError, match=r"np\.pkl.*numpy"):
        load_label_dict(path)


@pytest.mark.parametrize("content, message", [
    (["a", True], "expected a dict"),
    ({1: True}, "string keys"),
    ({"a": 2}, "must be a bool or 0/1"),
    ({"a": 1.0}, "must be a bool or 0/1"),
    ({"a": "True"}, "must be a bool or 0/1"),
    ({"a": None}, "must be a bool or 0/1"),
    ({"a": {"b": True}}, "must be a bool or 0/1"),
    ({"a": [True]}, "must be a bool or 0/1"),
])
def test_wrong_plain_types_are_refused(tmp_path, content, message):
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(UnsafePickleError, match=rf"labels\.pkl.*{message}"):
        load_label_dict(path)


def test_garbage_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(UnsafePickleError, match=r"garbage\.pkl.*not a valid pickle"):
        load_label_dict(garbage)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps(LABELS)[:-5])
    with pytest.raises(UnsafePickleError, match=r"truncated\.pkl"):
        load_label_dict(truncated)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pkl"):
        load_label_dict(tmp_path / "nothere.pkl")
