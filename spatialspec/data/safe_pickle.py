"""A restricted unpickler for the label files released as pickles (the chest-tube labels of Saab et al., Sec. 5).

The authors released the chest-tube labels of the SIIM-ACR images as ``cxr_tube_dict.pkl``, a plain ``dict`` mapping
SOPInstanceUID to ``bool``. Unpickling runs arbitrary code named in the file (``__reduce__`` can call ``os.system``),
so spatialspec never calls :func:`pickle.load` on it: :class:`RestrictedUnpickler` refuses every global lookup
(``find_class``) and every persistent id, which leaves only the opcodes that build plain containers and scalars, and
:func:`load_label_dict` then checks that the result is a ``dict`` of ``str`` -> ``bool`` / ``int`` in {0, 1}.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "safe_loads", "load_label_dict"]


class UnsafePickleError(ValueError):
    """A pickle asked for something other than plain dicts, strings, booleans and integers."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global and no persistent id.

    Classes and functions (``os.system``, ``numpy.bool_``, ``builtins.eval``, ...) reach an unpickler only through
    ``find_class`` (opcodes GLOBAL, STACK_GLOBAL, INST, OBJ and the extension registry), and external objects only
    through ``persistent_load``; both raise :class:`UnsafePickleError` here, before anything is imported or called.
    What can still be built is made of pickle's own opcodes: dict, list, tuple, set, str, bytes, int, float, bool,
    None. Callers check the type of the result (:func:`load_label_dict`).

    Args:
        file: a binary file object.
        source: how to name the data in error messages (e.g. the file path).
    """

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, source: str = "<pickle>") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> NoReturn:
        """Refuse every global: the pickle is not plain data."""
        raise UnsafePickleError(f"{self.source}: refused to load global '{module}.{name}': only plain dicts of "
                                "str -> bool/int are accepted, nothing was imported or executed")

    def persistent_load(self, pid: Any) -> NoReturn:
        """Refuse every persistent id."""
        raise UnsafePickleError(f"{self.source}: refused persistent id {pid!r}: only plain data is accepted")


def safe_loads(data: bytes, source: str = "<pickle>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Raises:
        UnsafePickleError: (a ``ValueError``) naming ``source`` if the pickle refers to any global or persistent id,
            or is not a valid pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            MemoryError, RecursionError) as e:
        raise UnsafePickleError(f"{source}: not a valid pickle of plain data: {type(e).__name__}: {e}") from None


def load_label_dict(path: str | os.PathLike) -> dict[str, bool]:
    """Load a pickled ``dict`` of ``str`` -> ``bool`` (or ``int`` 0/1), like the released ``cxr_tube_dict.pkl``,
    without executing anything (Sec. 5: the chest-tube labels of the CXR test images).

    Returns:
        the dict with its values as ``bool``, in the file's order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        UnsafePickleError: (a ``ValueError``) naming the file if the pickle refers to any global (a class, a function:
            nothing is imported or called), is not a dict, or holds a key that is not a string or a value that is not
            a bool or an int 0/1.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"label pickle not found: {path}")
    content = safe_loads(path.read_bytes(), source=str(path))
    if type(content) is not dict:
        raise UnsafePickleError(f"{path}: expected a dict of str -> bool, got {type(content).__name__}")
    labels: dict[str, bool] = {}
    for key, value in content.items():
        if type(key) is not str:
            raise UnsafePickleError(f"{path}: expected string keys (SOPInstanceUIDs), got {type(key).__name__} "
                                    f"{key!r}")
        if type(value) is bool:
            labels[key] = value
        elif type(value) is int and value in (0, 1):
            labels[key] = bool(value)
        else:
            raise UnsafePickleError(f"{path}: the value of {key!r} must be a bool or 0/1, got "
                                    f"{type(value).__name__} {value!r}")
    return labels
